// Package gatewaytls gives the gateway's own HTTPS endpoint (admin API, metrics, later a
// dashboard) certificates that renew themselves. It sits beside the firmware flow, not in it:
// devices never see these certificates, the people and tools that manage the gateway do.
//
// github.com/caddyserver/certmagic does the work: storage (a FileStorage under the state
// directory), locking, renewal timing and the on-disk layout are certmagic's. This package
// chooses the issuer: an ACME CA (public, or in-house like step-ca, with its own roots), or,
// for a LAN no ACME CA can reach, a local CA whose root the gateway keeps in its state
// directory and whose short-lived leaves certmagic renews like any other.
package gatewaytls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/fotagate/fotagate/certs/localca"
)

// Manager keeps the gateway's certificates and serves them to TLS handshakes. Create it with
// New, start it with ManageSync or Start, serve TLSConfig, and Close it at shutdown.
type Manager struct {
	cfg   Config
	log   *zap.Logger
	cache *certmagic.Cache
	magic *certmagic.Config
	root  *localca.CA // ModeLocalCA only

	life   context.Context // ends at Close; bounds certmagic's background obtain and retries
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool
	closed  bool
	ready   map[string]bool   // names with a certificate in certmagic's cache
	failed  map[string]failed // the latest failed attempt to get each name's certificate
	seq     uint64            // counts failures, so a wait sees only those after it began
	changed chan struct{}     // closed and replaced whenever ready or failed change
}

type failed struct {
	err error
	seq uint64
}

// New checks cfg, opens (or, in local CA mode on first start, makes) what it names under
// StateDir and returns a Manager that holds no certificate yet. It does no network I/O.
// log may be nil.
func New(cfg Config, log *zap.Logger) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("tls")
	m := &Manager{
		cfg: cfg, log: log,
		ready: map[string]bool{}, failed: map[string]failed{}, changed: make(chan struct{}),
	}
	var acmeRoots *x509.CertPool
	switch cfg.Mode {
	case ModeACME:
		if cfg.ACME.CARootsFile != "" {
			var err error
			if acmeRoots, err = loadRoots(cfg.ACME.CARootsFile); err != nil {
				return nil, err
			}
		}
	case ModeLocalCA:
		var err error
		if m.root, err = openRoot(cfg.StateDir, cfg.LocalCA, log); err != nil {
			return nil, err
		}
	}

	m.life, m.cancel = context.WithCancel(context.Background())
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		// One Config manages every certificate of this cache.
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             log,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		RenewalWindowRatio: cfg.RenewalWindowRatio,
		// A client that dialled an address not listed, sending no server name, still gets a
		// certificate (which it may refuse) instead of a handshake failure.
		DefaultServerName: cfg.Names[0],
		Storage:           &certmagic.FileStorage{Path: filepath.Join(cfg.StateDir, StorageDir)},
		Logger:            log,
		OnEvent:           m.onEvent,
		ShouldEmitFunc: func(event string) bool {
			return event == "cached_managed_cert" || event == "cert_failed"
		},
		// ARI is an ACME extension; the local CA has nothing to say through it.
		DisableARI: cfg.Mode == ModeLocalCA,
	})
	switch cfg.Mode {
	case ModeACME:
		a := cfg.ACME
		m.magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
			CA:                      a.DirectoryURL,
			Email:                   a.Email,
			Agreed:                  true, // configuring ACME mode is the agreement; nobody is at a prompt
			Profile:                 a.Profile,
			DisableHTTPChallenge:    a.Challenge != ChallengeHTTP01,
			DisableTLSALPNChallenge: a.Challenge != ChallengeTLSALPN01,
			ListenHost:              a.ListenHost,
			AltHTTPPort:             a.HTTPPort,
			AltTLSALPNPort:          a.TLSALPNPort,
			TrustedRoots:            acmeRoots,
			Logger:                  log,
		})}
	case ModeLocalCA:
		m.magic.Issuers = []certmagic.Issuer{newLocalIssuer(m.root, cfg.Names, cfg.LocalCA.LeafLifetime, log)}
		if time.Until(m.root.Cert.NotAfter) < 2*cfg.LocalCA.LeafLifetime+rootExpiryWarning {
			log.Warn("the local CA root expires soon; leaves will get shorter, then stop: remove the root directory to make a new one and give clients the new root",
				zap.Time("not_after", m.root.Cert.NotAfter), zap.String("dir", filepath.Join(cfg.StateDir, RootDir)))
		}
	}
	return m, nil
}

// rootExpiryWarning is how long before the local root expires New starts warning about it.
const rootExpiryWarning = 30 * 24 * time.Hour

// loadRoots reads a PEM bundle of CA certificates.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: ACME.CARootsFile: %v", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: ACME.CARootsFile: %s holds no PEM certificate; point it at the PEM root of the CA that signs the ACME server's HTTPS certificate", ErrConfig, path)
	}
	return pool, nil
}

// onEvent follows certmagic's events to know which names have a certificate. It runs
// synchronously inside certmagic, so it only records.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch event {
	case "cached_managed_cert":
		sans, _ := data["sans"].([]string)
		for _, n := range sans {
			n = normalName(n)
			m.ready[n] = true
			delete(m.failed, n)
		}
	case "cert_failed":
		name, _ := data["identifier"].(string)
		err, _ := data["error"].(error)
		if err == nil {
			err = errors.New("certmagic reported a failure without an error")
		}
		m.seq++
		m.failed[normalName(name)] = failed{err: err, seq: m.seq}
	default:
		return nil
	}
	close(m.changed)
	m.changed = make(chan struct{})
	return nil
}

// Start begins managing the certificates of Config.Names and returns at once: each is
// loaded from storage or obtained in the background, where failures are logged and retried
// with backoff (certmagic's, for up to 30 days) until Close. Renewal runs from New to Close
// either way. Starting twice is a no-op.
//
// Use Start in the daemon when the admin listener answers TLS-ALPN-01 itself: the listener
// must be serving while the challenge runs.
func (m *Manager) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("gateway TLS: manager closed")
	}
	if m.started {
		return nil
	}
	m.started = true
	// Never ManageSync: certmagic's interactive path asks for an e-mail address and terms
	// agreement on the terminal when none is configured. The background path never does.
	return m.magic.ManageAsync(m.life, m.cfg.Names)
}

// ManageSync is Start, then waits until every name has a certificate, or returns the first
// failure after the call began (the background keeps retrying until Close), or ctx's error.
// A certificate loaded from storage counts even if it is due for renewal; the renewal
// follows in the background.
func (m *Manager) ManageSync(ctx context.Context) error {
	m.mu.Lock()
	since := m.seq
	m.mu.Unlock()
	if err := m.Start(); err != nil {
		return err
	}
	for {
		m.mu.Lock()
		var waiting []string
		var errs []error
		for _, n := range m.cfg.Names {
			if m.ready[n] {
				continue
			}
			waiting = append(waiting, n)
			if f, ok := m.failed[n]; ok && f.seq > since {
				errs = append(errs, fmt.Errorf("%s: %w", n, f.err))
			}
		}
		changed := m.changed
		m.mu.Unlock()
		if len(waiting) == 0 {
			return nil
		}
		if len(errs) > 0 {
			return fmt.Errorf("gateway TLS: no certificate yet (retrying in the background): %w", errors.Join(errs...))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("gateway TLS: still waiting for certificates of %v: %w", waiting, context.Cause(ctx))
		}
	}
}

// TLSConfig is a new server configuration that serves the managed certificates and answers
// TLS-ALPN-01 challenges. It offers h2, http/1.1 and acme-tls/1; callers may add to it (for
// example ClientCAs and ClientAuth for admin client certificates) but must keep
// GetCertificate.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.magic.TLSConfig()
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = []string{"h2", "http/1.1", "acme-tls/1"}
	return c
}

// Names are the names managed, normalised as certmagic files them.
func (m *Manager) Names() []string { return slices.Clone(m.cfg.Names) }

// Root is the local CA root certificate; nil in ACME mode.
func (m *Manager) Root() *x509.Certificate {
	if m.root == nil {
		return nil
	}
	return m.root.Cert
}

// ExportRoot writes the local CA root certificate to w in PEM; in ACME mode it fails with
// ErrNotLocalCA. See also the package function ExportRoot, which needs no Manager.
func (m *Manager) ExportRoot(w io.Writer) error {
	if m.root == nil {
		return fmt.Errorf("%w: mode is %q; clients trust the ACME CA's roots", ErrNotLocalCA, m.cfg.Mode)
	}
	return writeCertPEM(w, m.root.Cert)
}

// Close stops renewal and any background obtain. Certificates stay in storage for the next
// start. Closing twice is a no-op.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.cache.Stop()
	return nil
}
