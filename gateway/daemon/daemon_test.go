package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/certs/localca"
	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/daemon"
	"github.com/fotagate/fotagate/gateway/demo"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
)

const class = "esp8266-4m"

type world struct {
	t     *testing.T
	dir   string
	up    *demo.Upstream
	cfg   config.Config
	pub   ed25519.PublicKey
	image []byte
	devs  []registry.Device
}

// newWorld publishes a signed image to a real HTTPS/HTTP3 upstream and provisions devices.
func newWorld(t *testing.T, size, devices int) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), image: make([]byte, size)}
	rand.Read(w.image)
	pub, priv, err := manifest.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w.pub = pub
	pubFile := filepath.Join(w.dir, "vendor.pub")
	img := filepath.Join(w.dir, "fw.bin")
	os.WriteFile(img, w.image, 0o644)
	if err := manifest.SavePublicKey(pubFile, pub); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(w.dir, "site")
	if _, err := manifest.PublishDir(site, img, manifest.PublishOptions{Class: class, Version: "2.0", Seq: 2, Expires: time.Now().Add(time.Hour)}, priv); err != nil {
		t.Fatal(err)
	}
	if w.up, err = demo.StartUpstream(site); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.up.Close() })
	ca := filepath.Join(w.dir, "ca.pem")
	w.up.CA.WriteCertPEM(ca)
	w.cfg = config.Default()
	w.cfg.StateDir = filepath.Join(w.dir, "state")
	w.cfg.Registry = filepath.Join(w.cfg.StateDir, "devices.json")
	w.cfg.Cache.Dir = filepath.Join(w.cfg.StateDir, "cache")
	w.cfg.Devices.Listen = "127.0.0.1:0"
	w.cfg.Admin.Listen = ""
	w.cfg.Upstream.CABundle = ca
	w.cfg.Upstream.VendorKeys = []string{pubFile}
	w.cfg.Upstream.Retries = 0
	w.cfg.Classes = []config.Class{{Name: class, Manifest: w.up.URL + "/" + class + "/manifest.json"}}
	reg, err := registry.LoadOrCreate(w.cfg.Registry, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range devices {
		d, err := reg.Add("dev-"+string(rune('a'+i)), class, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		w.devs = append(w.devs, d)
	}
	return w
}

// gateway starts the real gateway on w's state and returns its address and a stop function.
func (w *world) gateway(poll bool) (string, func()) {
	w.t.Helper()
	cfg := w.cfg
	g, err := daemon.New(&cfg, zaptest.NewLogger(w.t), daemon.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	if poll {
		if err := g.Catalog.Poll(context.Background()); err != nil {
			w.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx, 0); close(done) }()
	return g.DeviceAddr().String(), func() { cancel(); <-done }
}

type sim struct {
	*devicelib.Device
	flash *devicelib.MemFlash
}

func (w *world) device(i int, flash devicelib.Flash, mem *devicelib.MemFlash, progress func(devicelib.Progress)) *sim {
	d, err := devicelib.New(devicelib.Config{ID: w.devs[i].ID, PSK: w.devs[i].PSK, Class: class, MaxPayload: 1024,
		VendorKeys: []ed25519.PublicKey{w.pub}, Flash: flash, Store: &devicelib.MemStore{}, Progress: progress})
	if err != nil {
		w.t.Fatal(err)
	}
	return &sim{Device: d, flash: mem}
}

func memFlash(t *testing.T) *devicelib.MemFlash {
	f, err := devicelib.NewMemFlash(1<<20, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func update(t *testing.T, addr string, d *sim) (devicelib.Result, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.Update(ctx, c)
}

func (w *world) exact(d *sim) bool {
	slot := make([]byte, len(w.image))
	if err := d.flash.Read(0, slot); err != nil {
		w.t.Fatal(err)
	}
	return bytes.Equal(slot, w.image)
}

func TestEndToEndThenServedFromCacheWithUpstreamGone(t *testing.T) {
	w := newWorld(t, 300_000, 3)
	addr, stop := w.gateway(true)
	for i := range w.devs {
		f := memFlash(t)
		d := w.device(i, f, f, nil)
		res, err := update(t, addr, d)
		if err != nil || res.Outcome != devicelib.Installed || !w.exact(d) {
			t.Fatalf("device %d: %+v %v", i, res, err)
		}
	}
	stop()
	before := w.up.Requests()
	w.up.Close() // the vendor host is gone: not even a connection is possible
	addr, stop = w.gateway(false)
	defer stop()
	f := memFlash(t)
	d := w.device(0, f, f, nil)
	res, err := update(t, addr, d)
	if err != nil || res.Outcome != devicelib.Installed || !w.exact(d) {
		t.Fatalf("after restart without upstream: %+v %v", res, err)
	}
	after := w.up.Requests()
	for k, n := range after {
		if before[k] != n {
			t.Fatalf("upstream traffic after restart: %s went from %d to %d", k, before[k], n)
		}
	}
}

func TestGatewayRestartMidTransferDeviceResumes(t *testing.T) {
	w := newWorld(t, 600_000, 1)
	addr, stop := w.gateway(true)
	f := memFlash(t)
	// Flash with the ESP8266's erase and page timings makes the transfer last long enough
	// to restart the gateway in the middle of it.
	timed := devicelib.WithESP8266Timing(f)
	halfway := make(chan struct{})
	var once bool
	d := w.device(0, timed, f, func(p devicelib.Progress) {
		if !once && p.Durable > 200_000 {
			once = true
			close(halfway)
		}
	})
	done := make(chan error, 1)
	go func() {
		res, err := update(t, addr, d)
		if err == nil && res.Outcome == devicelib.Installed {
			err = errNotCut
		}
		done <- err
	}()
	select {
	case <-halfway:
	case <-time.After(60 * time.Second):
		t.Fatal("transfer never reached 200 kB")
	}
	stop() // grace 0: the running transfer is cut
	if err := <-done; err == errNotCut {
		t.Fatal("the restart did not interrupt the transfer")
	}
	durable := d.State().Resume.Durable
	if durable == 0 {
		t.Fatal("nothing durable before the cut")
	}
	addr, stop = w.gateway(false)
	defer stop()
	res, err := update(t, addr, d)
	if err != nil || res.Outcome != devicelib.Installed {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if res.ResumedFrom == 0 || res.ResumedFrom != durable || !w.exact(d) {
		t.Fatalf("resumed from %d (durable was %d), exact %v", res.ResumedFrom, durable, w.exact(d))
	}
}

var errNotCut = &net.OpError{Op: "not cut"}

func TestAdminOverLocalCATLSWithToken(t *testing.T) {
	w := newWorld(t, 10_000, 1)
	tokenFile := filepath.Join(w.dir, "admin.token")
	os.WriteFile(tokenFile, []byte("s3cret-token-for-test\n"), 0o600)
	w.cfg.Admin.Listen = "127.0.0.1:0"
	w.cfg.Admin.TokenFile = tokenFile
	w.cfg.TLS = config.TLS{Mode: "local_ca", Names: []string{"127.0.0.1"}}
	opCA, err := localca.New("operators", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	operatorCert, err := opCA.Issue(localca.Leaf{Client: true, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.Admin.ClientCA = filepath.Join(w.dir, "operators.pem")
	opCA.WriteCertPEM(w.cfg.Admin.ClientCA)
	cfg := w.cfg
	g, err := daemon.New(&cfg, zaptest.NewLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx, 0); close(done) }()
	defer func() { cancel(); <-done }()
	var root bytes.Buffer
	if err := gatewaytls.ExportRoot(w.cfg.StateDir, &root); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root.Bytes())
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + g.AdminAddr().String()
	get := func(c *http.Client, path, token string) (int, error) {
		req, _ := http.NewRequest("GET", url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// The certificate is issued in the background: wait, bounded, for the first answer.
	var code int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, err = get(trusting, "/healthz", ""); err == nil {
			break
		}
	}
	if err != nil || code != 200 {
		t.Fatalf("healthz over TLS: %d %v", code, err)
	}
	if code, _ := get(trusting, "/api/v1/devices", ""); code != http.StatusUnauthorized {
		t.Fatalf("devices without token: %d", code)
	}
	if code, _ := get(trusting, "/api/v1/devices", "s3cret-token-for-test"); code != 200 {
		t.Fatalf("devices with token: %d", code)
	}
	if code, _ := get(trusting, "/dashboard/", ""); code != http.StatusUnauthorized {
		t.Fatalf("dashboard without credentials: %d", code)
	}
	if code, _ := get(trusting, "/dashboard/", "s3cret-token-for-test"); code != 200 {
		t.Fatalf("dashboard with token: %d", code)
	}
	// An operator's client certificate from admin.client_ca opens the API without a token.
	withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{operatorCert}}}}
	if code, err := get(withCert, "/api/v1/devices", ""); err != nil || code != 200 {
		t.Fatalf("devices with an operator certificate: %d %v", code, err)
	}
	stranger := &http.Client{Timeout: 10 * time.Second}
	if _, err := get(stranger, "/healthz", ""); err == nil {
		t.Fatal("a client without the exported root connected")
	}
}
