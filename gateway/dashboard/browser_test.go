package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/certs/localca"
	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/admin"
	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/catalog"
	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/protocol"
)

// The browser test drives Debian's chromium (package chromium, in .ci/deps) against a real
// device server whose Fleet feeds the dashboard, while devicelib devices with ESP8266 flash
// timings download an image from a real cache. The dashboard is served over HTTPS with the
// gateway's own certificates (certs/gatewaytls, local CA mode, as the admin listener
// serves them), and chromium verifies them: the test imports the exported root into the
// NSS database of the browser's own $HOME with certutil (package libnss3-tools), as an
// operator imports what `fotagate ca export` prints. Certificate checks are never turned off.

const (
	chromiumPath = "/usr/bin/chromium"
	browserClass = "esp8266-4m"
	browserSeq   = 7
	imageSize    = 320 << 10 // about 5 s per device with ESP8266 flash timings
)

// registry is the device server's view of the provisioned devices.
type registry map[string]server.Device

func (r registry) LookupDevice(id string) (server.Device, bool) { d, ok := r[id]; return d, ok }

// cachedRelease serves one image from a real cache to every device running an older one.
type cachedRelease struct {
	cache  *cache.Cache
	digest [32]byte
	size   uint32
}

func (c cachedRelease) Latest(class string, running uint32) (*server.Image, error) {
	if class != browserClass || running >= browserSeq {
		return nil, nil
	}
	return &server.Image{Seq: browserSeq, Size: c.size, Digest: c.digest,
		Open: func() (server.ImageReader, error) { return c.cache.Open(c.digest) }}, nil
}

func deviceKey(id string) [32]byte { return sha256.Sum256([]byte("key of " + id)) }

// browserGateway is a device server, a Fleet and a dashboard on loopback.
type browserGateway struct {
	fleet      *admin.Fleet
	devAddr    string
	url        string
	root       []byte // PEM of the local CA that signed the dashboard's certificate
	image      []byte
	registered registry
}

func startBrowserGateway(t *testing.T) *browserGateway {
	t.Helper()
	log := zaptest.NewLogger(t)
	img := make([]byte, imageSize)
	rand.NewChaCha8([32]byte{42}).Read(img)
	digest := sha256.Sum256(img)

	c, err := cache.Open(t.TempDir(), 0, log)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Begin(digest, int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}

	reg := registry{}
	for _, id := range []string{"lobby-door-01", "lift-panel-02", "boiler-room-03", "roof-sensor-04"} {
		reg[id] = server.Device{Class: browserClass, PSK: deviceKey(id)}
	}
	fleet := admin.NewFleet(admin.FleetConfig{}, log)
	srv, err := server.New(server.Config{GatewayID: "gw-lobby", FailBurst: 100}, reg,
		cachedRelease{cache: c, digest: digest, size: imageSize}, fleet, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	polled := time.Now()
	src := Sources{
		Gateway: "gw-lobby",
		Fleet:   fleet,
		Catalog: func() []catalog.Status {
			return []catalog.Status{{Class: browserClass, Seq: browserSeq, Version: "2.4.1", Size: imageSize,
				SHA256: fmt.Sprintf("%x", digest), LastPoll: polled}}
		},
		Cache:      c.List,
		CacheStats: c.Stats,
		Upstream:   func() string { return "https://updates.vendor.example (HTTP/3)" },
	}
	url, root := serveTLS(t, Handler(src, admin.TokenAuth(testToken), log))
	return &browserGateway{fleet: fleet, devAddr: ln.Addr().String(), url: url, root: root, image: img, registered: reg}
}

// serveTLS serves h on 127.0.0.1 over HTTPS with a certificate from the gateway's local CA
// and the timeouts of the daemon's admin listener, and returns its URL and the CA's root in
// PEM.
func serveTLS(t *testing.T, h http.Handler) (url string, rootPEM []byte) {
	t.Helper()
	state := t.TempDir()
	m, err := gatewaytls.New(gatewaytls.Config{Mode: gatewaytls.ModeLocalCA, Names: []string{"127.0.0.1"}, StateDir: state},
		zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.ManageSync(ctx); err != nil {
		t.Fatal(err)
	}
	var root bytes.Buffer
	if err := gatewaytls.ExportRoot(state, &root); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: m.TLSConfig(),
		ErrorLog:          log.New(io.Discard, "", 0), // a browser refusing the certificate is a test case
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "https://" + ln.Addr().String(), root.Bytes()
}

// trustingHome makes a $HOME whose NSS database, where chromium on Linux looks for the
// roots a user added, trusts rootPEM for servers.
func trustingHome(t *testing.T, rootPEM []byte) string {
	t.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Fatalf("certutil: %v: run make deps (it installs libnss3-tools)", err)
	}
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(home, "root.crt")
	if err := os.WriteFile(rootFile, rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "fotagate gateway local CA", "-t", "C,,", "-i", rootFile},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	return home
}

// runDevice updates one simulated device with ESP8266 flash timings, as key.
func (g *browserGateway) runDevice(ctx context.Context, id string, key [32]byte) (devicelib.Result, error) {
	flash, err := devicelib.NewMemFlash(imageSize+4096, 4096)
	if err != nil {
		return devicelib.Result{}, err
	}
	d, err := devicelib.New(devicelib.Config{ID: id, PSK: key, Class: browserClass, MaxPayload: 1024,
		Flash: devicelib.WithESP8266Timing(flash), Store: &devicelib.MemStore{}})
	if err != nil {
		return devicelib.Result{}, err
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", g.devAddr)
	if err != nil {
		return devicelib.Result{}, err
	}
	defer conn.Close()
	return d.Update(ctx, conn)
}

// newBrowser starts headless chromium with the flags Debian's build needs as root, in a
// fresh profile, trusting rootPEM. The allocator's context bounds the browser's whole life.
func newBrowser(t *testing.T, limit time.Duration, rootPEM []byte) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v: run make deps (it installs Debian's chromium)", chromiumPath, err)
	}
	home := trustingHome(t, rootPEM)
	profile := t.TempDir()
	life, stop := context.WithTimeout(context.Background(), limit)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 1000),
		chromedp.Env("HOME="+home),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancelCtx()
		cancelAlloc()
		stop()
		// Every chromium process (browser, zygote, renderers, utilities) names the profile
		// on its command line: none may outlive the test.
		end := time.Now().Add(5 * time.Second)
		for {
			left := processesWith("--user-data-dir=" + profile)
			if len(left) == 0 {
				return
			}
			if time.Now().After(end) {
				t.Errorf("chromium processes left after Cancel: %v", left)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return ctx
}

// processesWith lists the pids whose command line has arg.
func processesWith(arg string) []string {
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for a := range strings.SplitSeq(string(cmd), "\x00") {
			if a == arg {
				pids = append(pids, d.Name())
				break
			}
		}
	}
	return pids
}

// eval evaluates a JavaScript expression in the page, within a few seconds.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true. Errors count as false: the page
// may be navigating.
func waitFor(t *testing.T, ctx context.Context, what, cond string, limit time.Duration) {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(sctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("waiting %v for %s (last error: %v)", limit, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func step(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// artifact writes a screenshot where CI keeps it, else where the test log says.
func artifact(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := os.Getenv("FOTAGATE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func TestDashboardInARealBrowser(t *testing.T) {
	g := startBrowserGateway(t)
	ctx := newBrowser(t, 60*time.Second, g.root)

	// Without credentials: the login form, and the feed and assets are refused.
	step(t, ctx, "opening the dashboard", chromedp.Navigate(g.url+Prefix))
	if proto := eval[string](t, ctx, `performance.getEntriesByType("navigation")[0].nextHopProtocol`); proto != "h2" {
		t.Errorf("the page came over %q, want h2 as the admin listener serves it", proto)
	}
	if title := eval[string](t, ctx, "document.title"); !strings.HasPrefix(title, "Log in") {
		t.Fatalf("without a session the page is %q, want the login form", title)
	}
	for _, path := range []string{"events", "static/app.js"} {
		if st := eval[int](t, ctx, `fetch("`+Prefix+path+`").then(r => r.status)`); st != 401 {
			t.Errorf("fetch %s without a session: %d, want 401", path, st)
		}
	}

	// A wrong token is refused; the right one logs in.
	step(t, ctx, "wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Submit(chromedp.CSS("#login")))
	waitFor(t, ctx, "the refusal", `document.body.textContent.includes("not accepted")`, 10*time.Second)
	step(t, ctx, "logging in", chromedp.SendKeys(chromedp.CSS("#token"), testToken), chromedp.Submit(chromedp.CSS("#login")))
	step(t, ctx, "the live page", chromedp.WaitVisible(chromedp.CSS(`#live[data-state="live"]`)))
	eval[bool](t, ctx, "window.__sameDocument = true")

	// Devices update meanwhile, and an intruder with a wrong key knocks.
	devCtx, stopDevices := context.WithTimeout(ctx, 40*time.Second)
	defer stopDevices()
	var wg sync.WaitGroup
	results := make(chan string, 8)
	for i, id := range []string{"lobby-door-01", "lift-panel-02", "boiler-room-03"} {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 700 * time.Millisecond)
			res, err := g.runDevice(devCtx, id, deviceKey(id))
			if err != nil || res.Outcome != devicelib.Installed {
				results <- fmt.Sprintf("%s: %v %v", id, res.Outcome, err)
			}
		})
	}
	wg.Go(func() {
		time.Sleep(300 * time.Millisecond)
		if _, err := g.runDevice(devCtx, "roof-sensor-04", deviceKey("someone else")); !errors.Is(err, protocol.ErrAuthFailed) {
			results <- fmt.Sprintf("intruder: %v, want auth_failed", err)
		}
	})

	// The progress bar moves without a reload.
	const progress = `(() => { const p = document.querySelector("#dev-lobby-door-01 progress"); return p ? p.value : -1 })()`
	waitFor(t, ctx, "a transfer to show", progress+" > 0", 20*time.Second)
	// It moves as the device's Acks come in (every 32 KiB, the gateway waking on pairs): about
	// once a second at ESP8266 flash speed.
	first := eval[float64](t, ctx, progress)
	waitFor(t, ctx, "the bar to move", fmt.Sprintf("%s > %v", progress, first), 10*time.Second)

	// The refusals arrive in the list, newest first: the intruder's, then a release from
	// the upstream whose signature does not verify.
	waitFor(t, ctx, "the intruder's refusal",
		`document.getElementById("refusal-rows").textContent.includes("claims roof-sensor-04")`, 20*time.Second)
	g.fleet.RecordUpstreamRefusal(browserClass, "manifest does not verify",
		errors.New("manifest esp8266-4m: signature by an unknown vendor key"))
	waitFor(t, ctx, "the upstream refusal on top",
		`document.querySelector("#refusal-rows tr").textContent.includes("Upstream release refused")`, 20*time.Second)
	if !eval[bool](t, ctx, `document.getElementById("refusal-rows").textContent.includes("auth_failed")`) {
		t.Error("the intruder's reason is not shown")
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, "dashboard-live.png", shot)

	wg.Wait()
	close(results)
	for r := range results {
		t.Error(r)
	}
	waitFor(t, ctx, "every device installed",
		`document.querySelectorAll('#device-rows tr[data-state="installed"]').length === 3`, 20*time.Second)
	if n := eval[string](t, ctx, `document.getElementById("sum-devices").textContent`); n != "3" {
		t.Errorf("summary counts %s devices, want 3 (the intruder is no device)", n)
	}
	if !eval[bool](t, ctx, "window.__sameDocument === true") {
		t.Error("the page reloaded: the feed did not update it in place")
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	artifact(t, "dashboard-done.png", shot)

	// Logging out drops the session: the page is the login form again, the feed refused.
	step(t, ctx, "logging out", chromedp.Click(chromedp.CSS(`form[action="/dashboard/logout"] button`)))
	waitFor(t, ctx, "the login form", `document.title.startsWith("Log in")`, 10*time.Second)
	step(t, ctx, "reopening the dashboard", chromedp.Navigate(g.url+Prefix))
	if title := eval[string](t, ctx, "document.title"); !strings.HasPrefix(title, "Log in") {
		t.Errorf("after logout the page is %q", title)
	}
	if st := eval[int](t, ctx, `fetch("`+Prefix+`events").then(r => r.status)`); st != 401 {
		t.Errorf("fetch events after logout: %d, want 401", st)
	}
}

func TestBrowserRefusesTheDashboardSignedByAnotherRoot(t *testing.T) {
	stranger, err := localca.New("someone else's CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveTLS(t, Handler(Sources{Fleet: admin.NewFleet(admin.FleetConfig{}, nil)}, admin.TokenAuth(testToken), nil))
	ctx := newBrowser(t, 30*time.Second, stranger.CertPEM())
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = chromedp.Do(sctx, chromedp.Navigate(url+Prefix))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT_AUTHORITY_INVALID") {
		t.Fatalf("navigating to a gateway whose root the browser does not trust: %v, want ERR_CERT_AUTHORITY_INVALID", err)
	}
}
