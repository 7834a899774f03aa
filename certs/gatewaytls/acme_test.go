package gatewaytls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/certs/localca"
)

// gatewayName is the name the gateway is known by in these tests; startDNS resolves it (and
// every other name) to 127.0.0.1, as a plant's LAN DNS would resolve it to the gateway.
const gatewayName = "gateway.plant.test"

// startDNS serves DNS over TCP on 127.0.0.1 (Pebble's validator asks over TCP), answering
// 127.0.0.1 to every A question and nothing to the rest, and returns its address.
func startDNS(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

// pebble is an in-process ACME CA, wired as pebble's cmd/pebble wires it.
type pebble struct {
	directory string         // ACME directory URL
	apiRoots  string         // PEM file of the root of the directory's HTTPS certificate
	roots     *x509.CertPool // the root that issued certificates chain to
}

// startPebble runs Pebble on 127.0.0.1, issuing certificates valid for validity and
// validating challenges on httpPort and tlsPort of the addresses dnsAddr resolves names to.
func startPebble(t *testing.T, validity time.Duration, httpPort, tlsPort int, dnsAddr string) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // validate at once, not after a random pause
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no random badNonce errors
	t.Setenv("PEBBLE_AUTHZREUSE", "0")      // every order, renewals too, solves its challenge
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "0") // in case the environment says otherwise
	logger := log.New(io.Discard, "", 0)    // Pebble's goroutines outlive the test
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: uint64(validity / time.Second)},
	})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	// The directory's own HTTPS certificate comes from an "in-house" CA whose root the
	// gateway is given in ACME.CARootsFile.
	apiCA, err := localca.New("in-house ACME CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	apiCert, err := apiCA.IssueFor(time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(front.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{apiCert}}
	srv.Config.ErrorLog = logger
	srv.StartTLS()
	t.Cleanup(srv.Close)
	apiRoots := filepath.Join(t.TempDir(), "acme-roots.pem")
	if err := apiCA.WriteCertPEM(apiRoots); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &pebble{directory: srv.URL + wfe.DirectoryPath, apiRoots: apiRoots, roots: roots}
}

// freePort is a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln := listen(t)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestACMEObtainsServesAndRenewsAgainstPebbleWithHTTP01(t *testing.T) {
	const validity = 10 * time.Second
	httpPort := freePort(t)
	p := startPebble(t, validity, httpPort, freePort(t), startDNS(t))
	m := newManager(t, Config{
		Mode: ModeACME, Names: []string{gatewayName}, StateDir: t.TempDir(),
		ACME: ACME{
			DirectoryURL: p.directory, CARootsFile: p.apiRoots, Email: "ops@plant.test",
			Challenge: ChallengeHTTP01, ListenHost: "127.0.0.1", HTTPPort: httpPort,
		},
		RenewalWindowRatio: 0.5,
		RenewCheckInterval: 250 * time.Millisecond,
	})
	addr := serve(t, m)

	first, err := leafOf(addr, gatewayName, p.roots)
	if err != nil {
		t.Fatalf("certificate from Pebble: %v", err)
	}
	if got := first.NotAfter.Sub(first.NotBefore); got > validity {
		t.Fatalf("served certificate lives %s; Pebble issues %s: not Pebble's", got, validity)
	}
	if _, err := leafOf(addr, gatewayName, x509.NewCertPool()); !unknownAuthority(err) {
		t.Fatalf("a client that does not trust Pebble's root: got %v, want unknown authority", err)
	}

	for {
		leaf, err := leafOf(addr, gatewayName, p.roots)
		if err != nil {
			t.Fatalf("during renewal: %v", err)
		}
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if time.Now().After(first.NotAfter) {
				t.Fatalf("renewed only after the first certificate expired at %s", first.NotAfter)
			}
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Fatalf("renewed certificate expires %s, not after the first %s", leaf.NotAfter, first.NotAfter)
			}
			t.Logf("renewed %.1fs before expiry: serial %x -> %x", time.Until(first.NotAfter).Seconds(), first.SerialNumber, leaf.SerialNumber)
			return
		}
		if time.Now().After(first.NotAfter) {
			t.Fatalf("still serving serial %x after it expired", first.SerialNumber)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestACMEAnswersTLSALPN01OnTheServedPort: with TLSALPNPort set to the port the gateway
// serves its TLSConfig on, the challenge is answered by that server itself, as the admin
// listener will answer it.
func TestACMEAnswersTLSALPN01OnTheServedPort(t *testing.T) {
	ln := listen(t)
	port := ln.Addr().(*net.TCPAddr).Port
	p := startPebble(t, time.Hour, freePort(t), port, startDNS(t))
	m, err := New(Config{
		Mode: ModeACME, Names: []string{gatewayName}, StateDir: t.TempDir(),
		ACME: ACME{
			DirectoryURL: p.directory, CARootsFile: p.apiRoots,
			Challenge: ChallengeTLSALPN01, ListenHost: "127.0.0.1", TLSALPNPort: port,
		},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr := serveOn(t, m, ln)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.ManageSync(ctx); err != nil {
		t.Fatal(err)
	}
	leaf, err := leafOf(addr, gatewayName, p.roots)
	if err != nil {
		t.Fatalf("certificate from Pebble: %v", err)
	}
	if leaf.NotAfter.Sub(leaf.NotBefore) > time.Hour {
		t.Fatalf("lives %s: not Pebble's certificate", leaf.NotAfter.Sub(leaf.NotBefore))
	}
}

// TestACMEFailsWithoutTheDirectorysRoot: the directory's HTTPS certificate comes from an
// in-house CA; without CARootsFile the gateway must not talk to it, and ManageSync says so
// instead of hanging.
func TestACMEFailsWithoutTheDirectorysRoot(t *testing.T) {
	p := startPebble(t, time.Hour, freePort(t), freePort(t), startDNS(t))
	m, err := New(Config{
		Mode: ModeACME, Names: []string{gatewayName}, StateDir: t.TempDir(),
		ACME: ACME{DirectoryURL: p.directory, ListenHost: "127.0.0.1", HTTPPort: freePort(t)},
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = m.ManageSync(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("got %v (context %v), want a prompt failure", err, ctx.Err())
	}
	t.Logf("refused as it should: %v", err)
}
