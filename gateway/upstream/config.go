package upstream

import (
	"context"
	"fmt"
	"time"
)

// Transport choices for Config.Transport.
const (
	// TransportAuto speaks HTTP/2 until the origin advertises HTTP/3 with Alt-Svc, then
	// prefers HTTP/3 and falls back to HTTP/2 whenever HTTP/3 fails.
	TransportAuto = "auto"
	// TransportH2 speaks HTTP/2 over TLS (HTTP/1.1 if the server offers nothing better).
	TransportH2 = "h2"
	// TransportH3 speaks HTTP/3 over QUIC to the URL's host and port, and never falls back.
	TransportH3 = "h3"
)

// Protocols a fetch reports having used: what the response actually came over.
const (
	ProtoH3     = "h3"
	ProtoH2     = "h2"
	ProtoHTTP11 = "http/1.1"
)

// Config says which vendor server to trust and how patiently to talk to it. The zero value of
// each field means the default given with it; New applies the defaults and validates.
type Config struct {
	// CABundle is a PEM file holding the CA certificates that may sign the vendor's server
	// certificate. Empty means the system roots. When set it replaces the system roots instead
	// of adding to them: a gateway told its vendor's CA trusts no other.
	CABundle string
	// Pins, when not empty, also require that some certificate of the verified chain (leaf,
	// intermediate or root) has one of these public keys, written as HPKP does:
	// "sha256/" + base64(SHA-256(SubjectPublicKeyInfo DER)). PinOf computes one.
	// Pins are checked on top of chain verification, never instead of it.
	Pins []string
	// ClientCert and ClientKey are PEM files of the certificate and key the gateway presents
	// when the vendor requires mutual TLS. Set both or neither.
	ClientCert, ClientKey string

	// Transport is TransportAuto (default), TransportH2 or TransportH3.
	Transport string

	// DialTimeout bounds a TCP connect (default 10s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake, and is the QUIC handshake idle timeout, which
	// is also how long "auto" waits for a dead HTTP/3 endpoint before falling back (default 10s).
	HandshakeTimeout time.Duration
	// Timeout bounds one attempt: one request with its whole response body (default 5m).
	// Bound a whole call, retries included, with the context.
	Timeout time.Duration
	// IdleTimeout is the longest wait for progress: for the response headers once connected,
	// and between two reads of the body that bring data (default 30s). An upstream that
	// stalls longer is cut, and the attempt retried.
	IdleTimeout time.Duration

	// Retries is how many more attempts follow a failed one that may succeed when tried
	// again (default 3; -1 means none). Every failed attempt counts, progress or not, so a
	// call makes at most Retries+1 requests.
	Retries int
	// BackoffBase and BackoffMax shape the wait before retry n: a random duration in
	// [d/2, d] where d = min(BackoffMax, BackoffBase*2^n) (defaults 1s and 30s).
	BackoffBase, BackoffMax time.Duration

	// DocLimit is the size limit FetchDoc applies when its caller passes none (default 64 KiB).
	DocLimit int64
	// MaxRedirects is how many https redirects a fetch follows (default 5; -1 means none).
	MaxRedirects int

	// Clock times backoff sleeps and Alt-Svc lifetimes; nil means the system clock.
	// Connection timeouts always use real time: they live inside net and quic-go.
	Clock Clock
}

// Clock is the time source the client sleeps and ages Alt-Svc entries with, injected so that
// tests neither sleep through backoffs nor wait out max-age.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or returns ctx's error if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.Transport == "" {
		cfg.Transport = TransportAuto
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&cfg.DialTimeout, 10*time.Second)
	setDur(&cfg.HandshakeTimeout, 10*time.Second)
	setDur(&cfg.Timeout, 5*time.Minute)
	setDur(&cfg.IdleTimeout, 30*time.Second)
	setDur(&cfg.BackoffBase, time.Second)
	setDur(&cfg.BackoffMax, 30*time.Second)
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.DocLimit == 0 {
		cfg.DocLimit = 64 << 10
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = 5
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	return cfg
}

// validate checks a defaulted Config; each error names the field and how to fix it. The
// trust material (files, pins) is checked by LoadTrust.
func (cfg Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	switch cfg.Transport {
	case TransportAuto, TransportH2, TransportH3:
	default:
		return bad("Transport", "%q is not a transport; use %q, %q or %q",
			cfg.Transport, TransportAuto, TransportH2, TransportH3)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"DialTimeout", cfg.DialTimeout},
		{"HandshakeTimeout", cfg.HandshakeTimeout},
		{"Timeout", cfg.Timeout},
		{"IdleTimeout", cfg.IdleTimeout},
		{"BackoffBase", cfg.BackoffBase},
		{"BackoffMax", cfg.BackoffMax},
	} {
		if d.v < 0 {
			return bad(d.field, "%s is negative; use a positive duration, or 0 for the default", d.v)
		}
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		return bad("BackoffMax", "%s is below BackoffBase %s; raise it", cfg.BackoffMax, cfg.BackoffBase)
	}
	if cfg.Retries < -1 {
		return bad("Retries", "%d; use a count, 0 for the default, or -1 for no retries", cfg.Retries)
	}
	if cfg.MaxRedirects < -1 {
		return bad("MaxRedirects", "%d; use a count, 0 for the default, or -1 to follow none", cfg.MaxRedirects)
	}
	if cfg.DocLimit < 0 {
		return bad("DocLimit", "%d is negative; use a size in bytes, or 0 for the default", cfg.DocLimit)
	}
	if (cfg.ClientCert == "") != (cfg.ClientKey == "") {
		return bad("ClientCert/ClientKey", "only one is set; set both PEM files for mutual TLS, or neither")
	}
	return nil
}

// retries is the number of retries the defaulted config allows.
func (cfg Config) retries() int {
	if cfg.Retries < 0 {
		return 0
	}
	return cfg.Retries
}
