package upstream

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRefusesUntrustedServers(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cases := []struct {
		name     string
		cert     tls.Certificate
		reason   error
		inErrMsg string
	}{
		{"self-signed", selfSigned(t), ErrUnknownAuthority, "unknown authority"},
		{"other CA", newCA(t, "stranger-ca").leaf(t, leafOpts{}), ErrUnknownAuthority, "unknown authority"},
		{"wrong host", ca.leaf(t, leafOpts{hosts: []string{"firmware.other.example"}}), ErrHostMismatch, "not valid for the host"},
		{"expired", ca.leaf(t, leafOpts{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)}), ErrCertExpired, "expired"},
		{"not yet valid", ca.leaf(t, leafOpts{notBefore: time.Now().Add(24 * time.Hour), notAfter: time.Now().Add(48 * time.Hour)}), ErrCertExpired, "not yet valid"},
	}
	for _, pc := range overBoth {
		for _, tc := range cases {
			t.Run(pc.name+"/"+tc.name, func(t *testing.T) {
				v := &vendor{content: []byte("doc")}
				srv := pc.start(t, tc.cert, v)
				c := newTestClient(t, testConfig(ca, pc.transport))
				_, err := c.FetchDoc(ctxT(t), srv.URL, "", 0)
				mustErrIs(t, err, ErrCertificate, tc.reason)
				var ce *CertError
				if !errors.As(err, &ce) || ce.Host != "127.0.0.1" {
					t.Fatalf("no *CertError for 127.0.0.1 in %v", err)
				}
				if !strings.Contains(err.Error(), tc.inErrMsg) {
					t.Fatalf("message does not say %q: %v", tc.inErrMsg, err)
				}
				if n := len(v.requests()); n != 0 {
					t.Fatalf("%d requests reached an untrusted server", n)
				}
				if n := srv.handshakes.Load(); n != 1 {
					t.Fatalf("%d handshakes: a refusal must not be retried", n)
				}
			})
		}
	}
}

func TestSystemRootsRefuseTestCA(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	srv := startH2(t, ca.leaf(t, leafOpts{}), &vendor{content: []byte("doc")})
	cfg := testConfig(ca, TransportH2)
	cfg.CABundle = "" // system roots, which do not hold our test CA
	c := newTestClient(t, cfg)
	_, err := c.FetchDoc(ctxT(t), srv.URL, "", 0)
	mustErrIs(t, err, ErrUnknownAuthority)
}

func TestRefusesPlaintext(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	plain := &vendor{content: []byte("doc")}
	ps := httptest.NewServer(plain)
	t.Cleanup(ps.Close)
	// An https origin that redirects to the plaintext one.
	redirect := &vendor{handle: func(_ int, w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, ps.URL+"/fw.bin", http.StatusFound)
		return true
	}}
	rs := startH2(t, ca.leaf(t, leafOpts{}), redirect)
	c := newTestClient(t, testConfig(ca, TransportAuto))
	ctx := ctxT(t)

	for _, u := range []string{ps.URL + "/m", strings.Replace(ps.URL, "http://", "HTTP://", 1), rs.URL + "/m"} {
		_, err := c.FetchDoc(ctx, u, "", 0)
		mustErrIs(t, err, ErrPlaintextURL)
		if !strings.Contains(err.Error(), "https://") {
			t.Fatalf("message does not say what to use: %v", err)
		}
		_, err = c.Download(ctx, u, &strings.Builder{}, 0, 3)
		mustErrIs(t, err, ErrPlaintextURL)
	}
	if n := len(plain.requests()); n != 0 {
		t.Fatalf("%d requests went out in plaintext", n)
	}
	for _, u := range []string{"ftp://127.0.0.1/x", "https:///nohost", "//127.0.0.1/x", "::"} {
		_, err := c.FetchDoc(ctx, u, "", 0)
		mustErrIs(t, err, ErrBadURL)
	}
}

func TestFollowsHTTPSRedirectsWithinLimit(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	target := &vendor{content: []byte("doc")}
	ts := startH2(t, ca.leaf(t, leafOpts{}), target)
	hops := &vendor{handle: func(_ int, w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, ts.URL+"/fw", http.StatusFound)
		return true
	}}
	hs := startH2(t, ca.leaf(t, leafOpts{}), hops)

	c := newTestClient(t, testConfig(ca, TransportH2))
	doc, err := c.FetchDoc(ctxT(t), hs.URL, "", 0)
	if err != nil || string(doc.Body) != "doc" {
		t.Fatalf("redirect: %q, %v", doc.Body, err)
	}

	cfg := testConfig(ca, TransportH2)
	cfg.MaxRedirects = -1
	c = newTestClient(t, cfg)
	_, err = c.FetchDoc(ctxT(t), hs.URL, "", 0)
	mustErrIs(t, err, ErrBadResponse)
}

func TestPins(t *testing.T) {
	root := newCA(t, "vendor-root")
	inter := root.sub(t, "vendor-intermediate")
	cert := inter.leaf(t, leafOpts{})
	stranger := newCA(t, "stranger").cert
	randomPin := "sha256/" + base64.StdEncoding.EncodeToString(make([]byte, sha256.Size))
	cases := []struct {
		name string
		pins []string
		ok   bool
	}{
		{"leaf", []string{PinOf(cert.Leaf)}, true},
		{"intermediate", []string{PinOf(inter.cert)}, true},
		{"root", []string{PinOf(root.cert)}, true},
		{"one of several", []string{randomPin, PinOf(inter.cert)}, true},
		{"no match", []string{randomPin}, false},
		{"another CA's key", []string{PinOf(stranger)}, false},
	}
	for _, pc := range overBoth {
		for _, tc := range cases {
			t.Run(pc.name+"/"+tc.name, func(t *testing.T) {
				v := &vendor{content: []byte("doc")}
				srv := pc.start(t, cert, v)
				cfg := testConfig(root, pc.transport)
				cfg.Pins = tc.pins
				c := newTestClient(t, cfg)
				doc, err := c.FetchDoc(ctxT(t), srv.URL, "", 0)
				if tc.ok {
					if err != nil || string(doc.Body) != "doc" {
						t.Fatalf("pinned fetch: %q, %v", doc.Body, err)
					}
					return
				}
				mustErrIs(t, err, ErrCertificate, ErrPinMismatch)
				// The operator needs the pins the server does have, to compare.
				if !strings.Contains(err.Error(), PinOf(cert.Leaf)) {
					t.Fatalf("message does not show the chain's pins: %v", err)
				}
				if n := len(v.requests()); n != 0 || srv.handshakes.Load() != 1 {
					t.Fatalf("%d requests and %d handshakes after a pin mismatch", n, srv.handshakes.Load())
				}
			})
		}
	}
}

func TestPinOfMatchesOpenSSLRecipe(t *testing.T) {
	// The documented openssl pipeline hashes the DER SubjectPublicKeyInfo; so must PinOf.
	ca := newCA(t, "vendor-ca")
	spki, err := x509.MarshalPKIXPublicKey(ca.cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	if want := "sha256/" + base64.StdEncoding.EncodeToString(sum[:]); PinOf(ca.cert) != want {
		t.Fatalf("PinOf = %s, want %s", PinOf(ca.cert), want)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	clientCA := newCA(t, "gateway-ca")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	requireClient := func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = pool
	}
	good := clientCA.leaf(t, leafOpts{hosts: []string{"gateway-7"}, client: true})
	bad := newCA(t, "stranger").leaf(t, leafOpts{hosts: []string{"gateway-7"}, client: true})
	cases := []struct {
		name string
		cert *tls.Certificate
		ok   bool
	}{
		{"required cert presented", &good, true},
		{"no cert", nil, false},
		{"cert from a CA the server does not trust", &bad, false},
	}
	for _, pc := range overBoth {
		for _, tc := range cases {
			t.Run(pc.name+"/"+tc.name, func(t *testing.T) {
				v := &vendor{content: []byte("doc")}
				srv := pc.start(t, cert, v, requireClient)
				cfg := testConfig(ca, pc.transport)
				// Over HTTP/2 with TLS 1.3, a refusal's alert is now and then lost to a
				// write that fails first (under 1% of attempts here); that attempt looks like
				// a broken connection and is retried, and the retry reports the refusal.
				cfg.Retries = 2
				if tc.cert != nil {
					cfg.ClientCert, cfg.ClientKey = writeKeyPair(t, t.TempDir(), *tc.cert)
				}
				c := newTestClient(t, cfg)
				doc, err := c.FetchDoc(ctxT(t), srv.URL, "", 0)
				if tc.ok {
					if err != nil || string(doc.Body) != "doc" {
						t.Fatalf("mTLS fetch: %q, %v", doc.Body, err)
					}
					return
				}
				mustErrIs(t, err, ErrCertificate, ErrClientCertRefused)
				if n := len(v.requests()); n != 0 {
					t.Fatalf("%d requests served without a valid client cert", n)
				}
			})
		}
	}
}

func TestSetTrustAppliesToNewConnections(t *testing.T) {
	oldCA, newCAx := newCA(t, "vendor-ca-2024"), newCA(t, "vendor-ca-2025")
	for _, pc := range overBoth {
		t.Run(pc.name, func(t *testing.T) {
			oldSrv := pc.start(t, oldCA.leaf(t, leafOpts{}), &vendor{content: []byte("old")})
			newSrv := pc.start(t, newCAx.leaf(t, leafOpts{}), &vendor{content: []byte("new")})
			c := newTestClient(t, testConfig(oldCA, pc.transport))
			ctx := ctxT(t)
			if _, err := c.FetchDoc(ctx, oldSrv.URL, "", 0); err != nil {
				t.Fatal(err)
			}
			_, err := c.FetchDoc(ctx, newSrv.URL, "", 0)
			mustErrIs(t, err, ErrUnknownAuthority)

			trust, err := LoadTrust(Config{CABundle: newCAx.pemPath})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SetTrust(trust); err != nil {
				t.Fatal(err)
			}
			if doc, err := c.FetchDoc(ctx, newSrv.URL, "", 0); err != nil || string(doc.Body) != "new" {
				t.Fatalf("after SetTrust: %q, %v", doc.Body, err)
			}
			// The old CA is withdrawn: no connection made under it may be reused.
			_, err = c.FetchDoc(ctx, oldSrv.URL, "", 0)
			mustErrIs(t, err, ErrUnknownAuthority)

			// Pins swap the same way.
			pool := x509.NewCertPool()
			pool.AddCert(newCAx.cert)
			pinned, err := NewTrust(pool, []string{PinOf(oldCA.cert)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.SetTrust(pinned); err != nil {
				t.Fatal(err)
			}
			_, err = c.FetchDoc(ctx, newSrv.URL, "", 0)
			mustErrIs(t, err, ErrPinMismatch)

			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = c.FetchDoc(ctx, newSrv.URL, "", 0)
			mustErrIs(t, err, ErrClosed)
			mustErrIs(t, c.SetTrust(trust), ErrClosed)
		})
	}
}

func TestConfigErrorsNameFieldAndFix(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		cfg    Config
		inText []string
	}{
		{"transport", Config{Transport: "quic"}, []string{"Transport", `"auto"`}},
		{"negative timeout", Config{IdleTimeout: -time.Second}, []string{"IdleTimeout", "positive"}},
		{"backoff order", Config{BackoffBase: time.Minute, BackoffMax: time.Second}, []string{"BackoffMax", "raise"}},
		{"retries", Config{Retries: -2}, []string{"Retries", "-1 for no retries"}},
		{"redirects", Config{MaxRedirects: -3}, []string{"MaxRedirects"}},
		{"doc limit", Config{DocLimit: -1}, []string{"DocLimit"}},
		{"half a key pair", Config{ClientCert: notPEM}, []string{"ClientCert/ClientKey", "both"}},
		{"missing bundle", Config{CABundle: filepath.Join(dir, "nope.pem")}, []string{"CABundle", "no such file"}},
		{"bundle without certs", Config{CABundle: notPEM}, []string{"CABundle", "no PEM certificate"}},
		{"bad key pair", Config{ClientCert: notPEM, ClientKey: notPEM}, []string{"ClientCert/ClientKey"}},
		{"pin without prefix", Config{Pins: []string{"AAAA"}}, []string{"Pins[0]", "sha256/"}},
		{"pin of wrong length", Config{Pins: []string{"sha256/AAAA"}}, []string{"Pins[0]", "32 bytes"}},
		{"pin not base64", Config{Pins: []string{"sha256/!!!"}}, []string{"Pins[0]", "base64"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			mustErrIs(t, err, ErrConfig)
			for _, s := range tc.inText {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("%v\ndoes not say %q", err, s)
				}
			}
		})
	}
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatalf("zero Config with defaults: %v", err)
	}
	_ = c.Close()
}
