package trust_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fotagate/fotagate/certs/localca"
	"github.com/fotagate/fotagate/certs/trust"
	"github.com/fotagate/fotagate/gateway/upstream"
)

// vendor is a loopback HTTPS server standing in for the vendor: its certificate can be
// switched, and it records the client certificate of every request.
type vendor struct {
	URL     string
	srv     *httptest.Server
	cert    atomic.Pointer[tls.Certificate]
	clients chan string // serial (hex) of each verified client certificate, "" for none
}

func newCA(t *testing.T, name string) *localca.CA {
	t.Helper()
	ca, err := localca.New(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverCert(t *testing.T, ca *localca.CA) tls.Certificate {
	t.Helper()
	c, err := ca.IssueFor(time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clientCert(t *testing.T, ca *localca.CA, notAfter time.Time) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(localca.Leaf{Client: true, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startVendor serves h over HTTP/2 on 127.0.0.1 with cert; clientCAs, if not nil, requires a
// client certificate from them.
func startVendor(t *testing.T, cert tls.Certificate, clientCAs *x509.CertPool, h http.Handler) *vendor {
	t.Helper()
	v := &vendor{clients: make(chan string, 100)}
	v.cert.Store(&cert)
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "manifest") })
	}
	v.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serial := ""
		if len(r.TLS.VerifiedChains) > 0 {
			serial = r.TLS.VerifiedChains[0][0].SerialNumber.Text(16)
		}
		select {
		case v.clients <- serial:
		default:
		}
		h.ServeHTTP(w, r)
	}))
	v.srv.EnableHTTP2 = true
	// Per connection, so that switchCert takes effect on the next handshake. (httptest puts
	// its own certificate in Certificates, which a client sending no SNI would get.)
	v.srv.TLS = &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{Certificates: []tls.Certificate{*v.cert.Load()}, NextProtos: []string{"h2", "http/1.1"}}
			if clientCAs != nil {
				c.ClientCAs = clientCAs
				c.ClientAuth = tls.RequireAndVerifyClientCert
			}
			return c, nil
		},
	}
	v.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	v.srv.StartTLS()
	t.Cleanup(v.srv.Close)
	v.URL = v.srv.URL + "/manifest"
	return v
}

// switchCert makes the vendor present c from now on: it cuts the open connections, so the
// next request needs a new handshake.
func (v *vendor) switchCert(c tls.Certificate) {
	v.cert.Store(&c)
	v.srv.CloseClientConnections()
}

// refused fetches until the answer is a certificate refusal and checks it is want. A
// request may first land on a connection switchCert just cut; that is not the answer.
func refused(t *testing.T, c *upstream.Client, url string, want error) {
	t.Helper()
	for range 5 {
		err := fetch(c, url)
		if err == nil {
			t.Fatalf("accepted; want %v", want)
		}
		if errors.Is(err, upstream.ErrCertificate) {
			if !errors.Is(err, want) {
				t.Fatalf("got %v, want %v", err, want)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no certificate refusal in 5 tries; want %v", want)
}

func (v *vendor) lastClient(t *testing.T) string {
	t.Helper()
	var last string
	for {
		select {
		case last = <-v.clients:
		default:
			return last
		}
	}
}

// writeAtomic replaces path as tools that rotate certificates do: a new file renamed over.
func writeAtomic(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func writePair(t *testing.T, c tls.Certificate, certPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	if err := localca.WritePEM(c, cp, kp); err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{cp, certPath}, {kp, keyPath}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		writeAtomic(t, f[1], b, 0o600)
	}
}

// files is a set of trust files in a temporary directory.
type files struct{ bundle, cert, key string }

func newFiles(t *testing.T) files {
	dir := t.TempDir()
	return files{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")}
}

func newClient(t *testing.T, cfg trust.Config) *upstream.Client {
	t.Helper()
	c, err := upstream.New(upstream.Config{
		CABundle: cfg.CABundle, Pins: cfg.Pins, ClientCert: cfg.ClientCert, ClientKey: cfg.ClientKey,
		Transport: upstream.TransportH2, Retries: -1, Timeout: 10 * time.Second,
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func fetch(c *upstream.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.FetchDoc(ctx, url, "", 0)
	return err
}

// eventually retries f until it returns nil, for at most 5s.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 5s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUpstreamRefusesUntrustedCAAndPinMismatch(t *testing.T) {
	ca, other := newCA(t, "vendor CA"), newCA(t, "other CA")
	v := startVendor(t, serverCert(t, ca), nil, nil)
	for _, tc := range []struct {
		name   string
		bundle *localca.CA
		pins   []string
		want   error // nil: accepted
	}{
		{"bundle of the vendor's CA", ca, nil, nil},
		{"bundle of another CA", other, nil, upstream.ErrUnknownAuthority},
		{"pin of the vendor's CA", ca, []string{upstream.PinOf(ca.Cert)}, nil},
		{"pin of another key", ca, []string{upstream.PinOf(other.Cert)}, upstream.ErrPinMismatch},
		{"pin of another key beside the right one", ca, []string{upstream.PinOf(other.Cert), upstream.PinOf(ca.Cert)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFiles(t)
			writeAtomic(t, f.bundle, tc.bundle.CertPEM(), 0o644)
			cfg := trust.Config{CABundle: f.bundle, Pins: tc.pins}
			// The client starts trusting the vendor; the trust under test arrives through the
			// Reloader, the way a rotation would bring it.
			c := newClient(t, trust.Config{CABundle: writeTemp(t, ca.CertPEM())})
			if _, err := trust.NewReloader(cfg, c, zaptest.NewLogger(t)); err != nil {
				t.Fatal(err)
			}
			err := fetch(c, v.URL)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startRun(t *testing.T, r *trust.Reloader) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestRotatedCABundleIsPickedUpWithoutRestart(t *testing.T) {
	caA, caB := newCA(t, "vendor CA 2025"), newCA(t, "vendor CA 2026")
	v := startVendor(t, serverCert(t, caA), nil, nil)
	f := newFiles(t)
	writeAtomic(t, f.bundle, caA.CertPEM(), 0o644)
	cfg := trust.Config{CABundle: f.bundle, Interval: 20 * time.Millisecond}
	c := newClient(t, cfg)
	r, err := trust.NewReloader(cfg, c, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, r)
	if err := fetch(c, v.URL); err != nil {
		t.Fatalf("before the rotation: %v", err)
	}

	v.switchCert(serverCert(t, caB))
	refused(t, c, v.URL, upstream.ErrUnknownAuthority) // the bundle does not name the new CA yet
	writeAtomic(t, f.bundle, caB.CertPEM(), 0o644)
	eventually(t, "fetch after the bundle names the new CA", func() error { return fetch(c, v.URL) })

	// The old CA left the bundle, so it is no longer trusted.
	v.switchCert(serverCert(t, caA))
	refused(t, c, v.URL, upstream.ErrUnknownAuthority)
}

func TestRotatedClientCertIsPickedUpWithoutRestart(t *testing.T) {
	vendorCA, clientCA, strangerCA := newCA(t, "vendor CA"), newCA(t, "vendor client CA"), newCA(t, "stranger CA")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	v := startVendor(t, serverCert(t, vendorCA), pool, nil)
	f := newFiles(t)
	writeAtomic(t, f.bundle, vendorCA.CertPEM(), 0o644)
	stranger := clientCert(t, strangerCA, time.Now().Add(time.Hour))
	writePair(t, stranger, f.cert, f.key)
	cfg := trust.Config{CABundle: f.bundle, ClientCert: f.cert, ClientKey: f.key, Interval: 20 * time.Millisecond}
	c := newClient(t, cfg)
	r, err := trust.NewReloader(cfg, c, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, r)
	if err := fetch(c, v.URL); !errors.Is(err, upstream.ErrClientCertRefused) {
		t.Fatalf("certificate of a CA the vendor does not know: got %v, want ErrClientCertRefused", err)
	}

	for i, next := range []tls.Certificate{
		clientCert(t, clientCA, time.Now().Add(time.Hour)),
		clientCert(t, clientCA, time.Now().Add(2*time.Hour)),
	} {
		writePair(t, next, f.cert, f.key)
		want := next.Leaf.SerialNumber.Text(16)
		eventually(t, "vendor sees the rotated client certificate", func() error {
			if err := fetch(c, v.URL); err != nil {
				return err
			}
			if got := v.lastClient(t); got != want {
				return errors.New("vendor saw serial " + got + ", want " + want)
			}
			return nil
		})
		t.Logf("rotation %d: vendor sees client certificate %s", i+1, want)
	}
}

func TestFailedReloadKeepsTheTrustInUse(t *testing.T) {
	vendorCA, clientCA := newCA(t, "vendor CA"), newCA(t, "vendor client CA")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	v := startVendor(t, serverCert(t, vendorCA), pool, nil)
	good := clientCert(t, clientCA, time.Now().Add(time.Hour))
	other := clientCert(t, clientCA, time.Now().Add(time.Hour))
	expired := clientCert(t, clientCA, time.Now().Add(-time.Minute))
	goodCert, goodKey := pemPair(t, good)
	otherCert, _ := pemPair(t, other)
	expiredCert, expiredKey := pemPair(t, expired)
	bundle := vendorCA.CertPEM()

	for _, tc := range []struct {
		name              string
		bundle, cert, key []byte // nil: remove the file
		want              error
	}{
		{"bundle is not PEM", []byte("not a certificate\n"), goodCert, goodKey, trust.ErrCABundle},
		{"bundle cut short", bundle[:len(bundle)/2], goodCert, goodKey, trust.ErrCABundle},
		{"bundle holds a key", append(append([]byte{}, bundle...), goodKey...), goodCert, goodKey, trust.ErrCABundle},
		{"bundle removed", nil, goodCert, goodKey, trust.ErrCABundle},
		{"key of another certificate", bundle, otherCert, goodKey, trust.ErrClientCert},
		{"client certificate expired", bundle, expiredCert, expiredKey, trust.ErrClientCert},
		{"client key cut short", bundle, goodCert, goodKey[:len(goodKey)-40], trust.ErrClientCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFiles(t)
			writeAtomic(t, f.bundle, bundle, 0o644)
			writePair(t, good, f.cert, f.key)
			cfg := trust.Config{CABundle: f.bundle, ClientCert: f.cert, ClientKey: f.key}
			c := newClient(t, cfg)
			core, logs := observer.New(zapcore.ErrorLevel)
			r, err := trust.NewReloader(cfg, c, zap.New(core))
			if err != nil {
				t.Fatal(err)
			}
			for path, data := range map[string][]byte{f.bundle: tc.bundle, f.cert: tc.cert, f.key: tc.key} {
				if data == nil {
					os.Remove(path)
				} else {
					writeAtomic(t, path, data, 0o600)
				}
			}
			for i := range 2 { // the second poll reports the same failure without logging it again
				applied, err := r.Check()
				if applied || !errors.Is(err, tc.want) {
					t.Fatalf("check %d: applied %v, error %v; want %v", i+1, applied, err, tc.want)
				}
			}
			if n := logs.Len(); n != 1 {
				t.Fatalf("%d error lines for one bad state of the files, want 1", n)
			}
			if err := fetch(c, v.URL); err != nil {
				t.Fatalf("the trust in use was dropped: %v", err)
			}
			if got, want := v.lastClient(t), good.Leaf.SerialNumber.Text(16); got != want {
				t.Fatalf("vendor saw client certificate %s, want the one in use before, %s", got, want)
			}

			// Fixed files are applied at the next check.
			writeAtomic(t, f.bundle, bundle, 0o644)
			writePair(t, other, f.cert, f.key)
			if applied, err := r.Check(); !applied || err != nil {
				t.Fatalf("after the fix: applied %v, error %v", applied, err)
			}
			if err := fetch(c, v.URL); err != nil {
				t.Fatal(err)
			}
			if got, want := v.lastClient(t), other.Leaf.SerialNumber.Text(16); got != want {
				t.Fatalf("after the fix the vendor saw %s, want %s", got, want)
			}
		})
	}
}

func pemPair(t *testing.T, c tls.Certificate) (cert, key []byte) {
	t.Helper()
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	if err := localca.WritePEM(c, cp, kp); err != nil {
		t.Fatal(err)
	}
	cert, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	key, err = os.ReadFile(kp)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// slowBody serves size bytes: the first half at once, the rest once release is closed.
type slowBody struct {
	size     int
	halfSent chan struct{}
	release  chan struct{}
}

func (s *slowBody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(s.size))
	body := bytes.Repeat([]byte("f"), s.size)
	w.Write(body[:s.size/2])
	w.(http.Flusher).Flush()
	close(s.halfSent)
	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	w.Write(body[s.size/2:])
}

// progressWriter signals once it holds at least mark bytes.
type progressWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	mark int
	hit  chan struct{}
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.buf.Len()
	p.buf.Write(b)
	if before < p.mark && p.buf.Len() >= p.mark {
		close(p.hit)
	}
	return len(b), nil
}

func TestTransferUnderWayFinishesAcrossReload(t *testing.T) {
	caA, caB := newCA(t, "vendor CA"), newCA(t, "vendor CA next")
	const size = 256 << 10
	slow := &slowBody{size: size, halfSent: make(chan struct{}), release: make(chan struct{})}
	v := startVendor(t, serverCert(t, caA), nil, slow)
	f := newFiles(t)
	writeAtomic(t, f.bundle, caA.CertPEM(), 0o644)
	cfg := trust.Config{CABundle: f.bundle}
	c := newClient(t, cfg)
	r, err := trust.NewReloader(cfg, c, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}

	w := &progressWriter{mark: size / 2, hit: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := c.Download(context.Background(), v.srv.URL+"/image.bin", w, 0, size)
		done <- err
	}()
	select {
	case <-w.hit:
	case err := <-done:
		t.Fatalf("download ended before the reload: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("download made no progress")
	}

	// The new bundle no longer trusts the CA of the connection carrying the download: if the
	// reload touched that connection, or the download had to reconnect, it would fail.
	writeAtomic(t, f.bundle, caB.CertPEM(), 0o644)
	if applied, err := r.Check(); !applied || err != nil {
		t.Fatalf("reload: applied %v, error %v", applied, err)
	}
	close(slow.release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("download under way was disturbed by the reload: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("download did not finish after the reload")
	}
	if w.buf.Len() != size || !bytes.Equal(w.buf.Bytes(), bytes.Repeat([]byte("f"), size)) {
		t.Fatalf("downloaded %d bytes, want %d of the image", w.buf.Len(), size)
	}
	// New connections use the new trust.
	if err := fetch(c, v.URL); !errors.Is(err, upstream.ErrUnknownAuthority) {
		t.Fatalf("request after the reload: got %v, want ErrUnknownAuthority", err)
	}
}

func TestParseBundleIsStrict(t *testing.T) {
	a, b := newCA(t, "a"), newCA(t, "b")
	two := append(append([]byte{}, a.CertPEM()...), b.CertPEM()...)
	corruptMiddle := bytes.Replace(two, b.CertPEM()[30:40], []byte("!!!!!!!!!!"), 1)
	for _, tc := range []struct {
		name string
		in   []byte
		n    int // certificates; 0 means an error is wanted
	}{
		{"one", a.CertPEM(), 1},
		{"two", two, 2},
		{"text between blocks", append(append([]byte("# vendor CA\n"), a.CertPEM()...), []byte("# next\n")...), 1},
		{"empty", nil, 0},
		{"text only", []byte("hello\n"), 0},
		{"cut short", two[:len(two)-30], 0},
		{"corrupt block between good ones", append(corruptMiddle, a.CertPEM()...), 0},
		{"private key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certs, err := trust.ParseBundle(tc.in)
			if tc.n == 0 {
				if err == nil {
					t.Fatalf("accepted, %d certificates", len(certs))
				}
				return
			}
			if err != nil || len(certs) != tc.n {
				t.Fatalf("got %d certificates, %v; want %d", len(certs), err, tc.n)
			}
		})
	}
}

func TestNewReloaderRefusesBadConfigAndFiles(t *testing.T) {
	ca := newCA(t, "vendor CA")
	good := writeTemp(t, ca.CertPEM())
	c := newClient(t, trust.Config{CABundle: good})
	for _, tc := range []struct {
		name string
		cfg  trust.Config
		want error
	}{
		{"client cert without key", trust.Config{CABundle: good, ClientCert: good}, trust.ErrConfig},
		{"negative interval", trust.Config{CABundle: good, Interval: -time.Second}, trust.ErrConfig},
		{"bad pin", trust.Config{CABundle: good, Pins: []string{"md5/abc"}}, trust.ErrConfig},
		{"missing bundle", trust.Config{CABundle: filepath.Join(t.TempDir(), "none.pem")}, trust.ErrCABundle},
		{"bundle of text", trust.Config{CABundle: writeTemp(t, []byte("x"))}, trust.ErrCABundle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := trust.NewReloader(tc.cfg, c, nil); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
