package gatewaytls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/certs/localca"
)

// serve runs an HTTPS server on 127.0.0.1 with m's TLS configuration, as the admin API will,
// and returns its address.
func serve(t *testing.T, m *Manager) string {
	t.Helper()
	return serveOn(t, m, listen(t))
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func serveOn(t *testing.T, m *Manager, ln net.Listener) string {
	t.Helper()
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig: m.TLSConfig(),
		ErrorLog:  log.New(io.Discard, "", 0), // refused handshakes are the point of some tests
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// leafOf dials addr trusting roots, with serverName as SNI and name to verify (an IP
// address sends none), and returns the certificate the server presented.
func leafOf(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{Config: &tls.Config{ServerName: serverName, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

func localConfig(dir string) Config {
	return Config{
		Mode:     ModeLocalCA,
		Names:    []string{"gateway.plant.lan", "127.0.0.1"},
		StateDir: dir,
	}
}

func newManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.ManageSync(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// exportedPool is what a client gets from `fotagate ca export`.
func exportedPool(t *testing.T, stateDir string) *x509.CertPool {
	t.Helper()
	var buf bytes.Buffer
	if err := ExportRoot(stateDir, &buf); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(buf.Bytes()) {
		t.Fatalf("export is not PEM: %q", buf.String())
	}
	return pool
}

func TestLocalCAServesLeavesOnlyClientsTrustingTheRootAccept(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, localConfig(dir))
	addr := serve(t, m)
	trusted := exportedPool(t, dir)
	stranger, err := localca.New("someone else's CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, serverName string
		roots            *x509.CertPool
		want             func(error) bool // nil: accepted
	}{
		{"by DNS name, root trusted", "gateway.plant.lan", trusted, nil},
		{"by IP address, root trusted", "127.0.0.1", trusted, nil},
		{"by DNS name, another root", "gateway.plant.lan", stranger.Pool(), unknownAuthority},
		{"by IP address, system roots", "127.0.0.1", nil, unknownAuthority},
		// certmagic has no certificate for it and fails the handshake (a client sending no
		// server name would get Names[0]'s).
		{"by a name not configured", "other.plant.lan", trusted, alert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, err := leafOf(addr, tc.serverName, tc.roots)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == nil:
				if leaf.NotAfter.Sub(leaf.NotBefore) > DefaultLeafLifetime+time.Minute {
					t.Fatalf("leaf lives %s, want at most %s", leaf.NotAfter.Sub(leaf.NotBefore), DefaultLeafLifetime)
				}
			case err == nil:
				t.Fatal("accepted")
			case !tc.want(err):
				t.Fatalf("refused for the wrong reason: %v", err)
			}
		})
	}
	var viaManager bytes.Buffer
	if err := m.ExportRoot(&viaManager); err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(viaManager.Bytes()); block == nil || !bytes.Equal(block.Bytes, m.Root().Raw) {
		t.Fatal("Manager.ExportRoot does not write the root in use")
	}
}

func unknownAuthority(err error) bool {
	_, ok := errors.AsType[x509.UnknownAuthorityError](err)
	return ok
}

func alert(err error) bool {
	_, ok := errors.AsType[tls.AlertError](err)
	return ok || strings.Contains(err.Error(), "remote error: tls:")
}

func TestLocalCARenewsTheLeafBeforeItExpires(t *testing.T) {
	dir := t.TempDir()
	cfg := localConfig(dir)
	cfg.LocalCA.LeafLifetime = 4 * time.Second
	cfg.RenewCheckInterval = 200 * time.Millisecond
	cfg.RenewalWindowRatio = 0.5
	m := newManager(t, cfg)
	addr := serve(t, m)
	roots := exportedPool(t, dir)
	first, err := leafOf(addr, "gateway.plant.lan", roots)
	if err != nil {
		t.Fatal(err)
	}
	deadline := first.NotAfter.Add(time.Second)
	for {
		leaf, err := leafOf(addr, "gateway.plant.lan", roots)
		if err != nil {
			t.Fatalf("during renewal: %v", err)
		}
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Fatalf("renewed leaf expires %s, not after the first %s", leaf.NotAfter, first.NotAfter)
			}
			if time.Now().After(first.NotAfter) {
				t.Fatalf("renewed only after the first leaf expired at %s", first.NotAfter)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %x after it expired", first.SerialNumber)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLocalCARootKeyIsPrivateAndReusedAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	m1, err := New(localConfig(dir), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	root1 := m1.Root()
	m1.Close()
	st, err := os.Stat(filepath.Join(dir, RootDir, RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("root key mode %#o, want 0600", st.Mode().Perm())
	}

	m2 := newManager(t, localConfig(dir))
	if !bytes.Equal(m2.Root().Raw, root1.Raw) {
		t.Fatal("a restart made a new root: clients that trust the old one would be locked out")
	}
	leaf, err := leafOf(serve(t, m2), "gateway.plant.lan", exportedPool(t, dir))
	if err != nil {
		t.Fatalf("leaf after restart: %v", err)
	}
	// The restart also reuses the leaf certmagic stored.
	m2.Close()
	m3 := newManager(t, localConfig(dir))
	again, err := leafOf(serve(t, m3), "gateway.plant.lan", exportedPool(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("a restart issued a new leaf (%x, was %x) although the stored one is current", again.SerialNumber, leaf.SerialNumber)
	}
}

func TestLocalCARefusesARootKeyOthersCanRead(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		dir := t.TempDir()
		m, err := New(localConfig(dir), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		key := filepath.Join(dir, RootDir, RootKeyFile)
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		_, err = New(localConfig(dir), zaptest.NewLogger(t))
		if !errors.Is(err, ErrRootKeyPermissions) || !strings.Contains(err.Error(), "chmod 600 "+key) {
			t.Fatalf("mode %#o: got %v, want ErrRootKeyPermissions with the chmod that fixes it", mode, err)
		}
	}
}

func TestLocalCARefusesABrokenRoot(t *testing.T) {
	other, err := localca.New("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := other.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ func(dir string) error
	}{
		{"key removed", func(d string) error { return os.Remove(filepath.Join(d, RootKeyFile)) }},
		{"certificate removed", func(d string) error { return os.Remove(filepath.Join(d, RootCertFile)) }},
		{"key of another root", func(d string) error { return os.WriteFile(filepath.Join(d, RootKeyFile), otherKey, 0o600) }},
		{"key not PEM", func(d string) error { return os.WriteFile(filepath.Join(d, RootKeyFile), []byte("x"), 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m, err := New(localConfig(dir), zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
			if err := tc.break_(filepath.Join(dir, RootDir)); err != nil {
				t.Fatal(err)
			}
			if _, err := New(localConfig(dir), zaptest.NewLogger(t)); !errors.Is(err, ErrRootBroken) {
				t.Fatalf("got %v, want ErrRootBroken (never a silent new root)", err)
			}
		})
	}
}

func TestExportRootNeedsARootAndLocalCAMode(t *testing.T) {
	if err := ExportRoot(t.TempDir(), io.Discard); !errors.Is(err, ErrNoRoot) {
		t.Fatalf("no root yet: got %v, want ErrNoRoot", err)
	}
	m, err := New(Config{
		Mode: ModeACME, Names: []string{"gateway.example.org"}, StateDir: t.TempDir(),
		ACME: ACME{DirectoryURL: "https://127.0.0.1:1/dir"},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.ExportRoot(io.Discard); !errors.Is(err, ErrNotLocalCA) {
		t.Fatalf("ACME mode: got %v, want ErrNotLocalCA", err)
	}
	if m.Root() != nil {
		t.Fatal("ACME mode has a local root")
	}
}

func csrFor(t *testing.T, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestLocalIssuerSignsOnlyConfiguredNames(t *testing.T) {
	ca, err := localca.New("test root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	li := newLocalIssuer(ca, []string{"Gateway.Plant.LAN", "10.0.0.5"}, time.Hour, zaptest.NewLogger(t))
	for _, tc := range []struct {
		name string
		req  x509.CertificateRequest
		ok   bool
	}{
		{"configured name", x509.CertificateRequest{DNSNames: []string{"gateway.plant.lan"}}, true},
		{"configured address", x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("10.0.0.5")}}, true},
		{"other name", x509.CertificateRequest{DNSNames: []string{"bank.example"}}, false},
		{"configured and other name", x509.CertificateRequest{DNSNames: []string{"gateway.plant.lan", "bank.example"}}, false},
		{"other address", x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("10.0.0.6")}}, false},
		{"no name", x509.CertificateRequest{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ic, err := li.Issue(context.Background(), csrFor(t, &tc.req))
			if !tc.ok {
				if err == nil {
					t.Fatal("signed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(ic.Certificate)
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if leaf.IsCA || leaf.NotAfter.Sub(leaf.NotBefore) > time.Hour+time.Minute {
				t.Fatalf("leaf IsCA %v, lifetime %s", leaf.IsCA, leaf.NotAfter.Sub(leaf.NotBefore))
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := li.Issue(context.Background(), csrFor(t, &x509.CertificateRequest{DNSNames: []string{"bank.example"}})); !errors.Is(err, ErrNameNotAllowed) {
		t.Fatalf("got %v, want ErrNameNotAllowed", err)
	}
}

func TestConfigValidateNamesTheFieldAndTheFix(t *testing.T) {
	good := localConfig("/var/lib/fotagate")
	if err := good.Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	acme := Config{Mode: ModeACME, Names: []string{"gw.example.org"}, StateDir: "/s",
		ACME: ACME{DirectoryURL: "https://acme.example/dir"}}
	if err := acme.Validate(); err != nil {
		t.Fatalf("good ACME config refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no mode", func(c *Config) { c.Mode = "" }, "Mode"},
		{"unknown mode", func(c *Config) { c.Mode = "selfsigned" }, "Mode"},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "StateDir"},
		{"no names", func(c *Config) { c.Names = nil }, "Names"},
		{"wildcard", func(c *Config) { c.Names = []string{"*.plant.lan"} }, "Names[0]"},
		{"name twice", func(c *Config) { c.Names = []string{"a.lan", "A.lan"} }, "Names[1]"},
		{"name with a port", func(c *Config) { c.Names = []string{"gw.lan:8443"} }, "Names[0]"},
		{"name with a trailing dot", func(c *Config) { c.Names = []string{"gw.lan."} }, "Names[0]"},
		{"ratio of one", func(c *Config) { c.RenewalWindowRatio = 1 }, "RenewalWindowRatio"},
		{"negative check interval", func(c *Config) { c.RenewCheckInterval = -time.Second }, "RenewCheckInterval"},
		{"leaf outlives root", func(c *Config) { c.LocalCA.LeafLifetime = 48 * time.Hour; c.LocalCA.RootLifetime = 24 * time.Hour }, "LocalCA.LeafLifetime"},
		{"leaf shorter than five checks", func(c *Config) { c.LocalCA.LeafLifetime = time.Minute; c.RenewCheckInterval = time.Minute }, "LocalCA.LeafLifetime"},
		{"negative leaf lifetime", func(c *Config) { c.LocalCA.LeafLifetime = -time.Hour }, "LocalCA.LeafLifetime"},
		{"ACME without directory", func(c *Config) { *c = acme; c.ACME.DirectoryURL = "" }, "ACME.DirectoryURL"},
		{"ACME over http", func(c *Config) { *c = acme; c.ACME.DirectoryURL = "http://acme.example/dir" }, "ACME.DirectoryURL"},
		{"ACME bad email", func(c *Config) { *c = acme; c.ACME.Email = "ops" }, "ACME.Email"},
		{"ACME dns-01", func(c *Config) { *c = acme; c.ACME.Challenge = "dns-01" }, "ACME.Challenge"},
		{"ACME port too big", func(c *Config) { *c = acme; c.ACME.HTTPPort = 70000 }, "ACME.HTTPPort"},
		{"ACME negative port", func(c *Config) { *c = acme; c.ACME.TLSALPNPort = -1 }, "ACME.TLSALPNPort"},
		{"ACME listen host with port", func(c *Config) { *c = acme; c.ACME.ListenHost = "0.0.0.0:80" }, "ACME.ListenHost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Names = append([]string(nil), good.Names...)
			tc.edit(&c)
			err := c.Validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field+": ") {
				t.Fatalf("got %v, want ErrConfig naming %s", err, tc.field)
			}
			if _, nerr := New(c, nil); !errors.Is(nerr, ErrConfig) {
				t.Fatalf("New accepted what Validate refuses: %v", nerr)
			}
		})
	}
}

func TestACMECARootsFileMustHoldACertificate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(bad, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.pem")} {
		_, err := New(Config{Mode: ModeACME, Names: []string{"gw.example.org"}, StateDir: dir,
			ACME: ACME{DirectoryURL: "https://ca.example/dir", CARootsFile: path}}, nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "ACME.CARootsFile") {
			t.Fatalf("%s: got %v, want ErrConfig naming ACME.CARootsFile", path, err)
		}
	}
}
