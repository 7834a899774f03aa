package trust

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/upstream"
)

// Setter takes a new Trust; *upstream.Client is one. Its SetTrust must leave attempts under
// way alone: upstream's does (they finish on the trust they started with; only new
// connections use the new one).
type Setter interface {
	SetTrust(*upstream.Trust) error
}

// Reloader applies the trust files to a Setter whenever they change. It is safe for
// concurrent use: Check may be called (on SIGHUP, say) while Run polls.
type Reloader struct {
	cfg    Config
	target Setter
	log    *zap.Logger
	now    func() time.Time

	mu      sync.Mutex // serialises checks, so two never apply out of order
	applied state      // the files of the trust in use
	failed  state      // the files of the last failed attempt, reported already
	lastErr error
}

// NewReloader loads the files of cfg, applies the result to target at once (so that what
// target uses is exactly what the Reloader compares against later) and returns the
// Reloader; Run then follows the files. It fails, applying nothing, if the files do not
// load. log may be nil.
func NewReloader(cfg Config, target Setter, log *zap.Logger) (*Reloader, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if target == nil {
		return nil, fmt.Errorf("%w: no target to apply the trust to", ErrConfig)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if log == nil {
		log = zap.NewNop()
	}
	r := &Reloader{cfg: cfg, target: target, log: log.Named("trust"), now: time.Now}
	f, s, err := cfg.read()
	if err != nil {
		return nil, err
	}
	t, m, err := cfg.build(f, r.now())
	if err != nil {
		return nil, err
	}
	if err := target.SetTrust(t); err != nil {
		return nil, fmt.Errorf("upstream trust: %w", err)
	}
	r.applied = s
	r.warn(f, m)
	r.log.Debug("upstream trust loaded", r.describe(m)...)
	return r, nil
}

// Check reads the files once. If they differ from those of the trust in use it builds a new
// Trust and applies it, returning true. If that fails it returns the error and the trust in
// use stays; the failure is logged once per content of the files, not at every poll.
func (r *Reloader) Check() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, s, err := r.cfg.read()
	if s == r.applied {
		return false, nil
	}
	if s == r.failed {
		return false, r.lastErr
	}
	var t *upstream.Trust
	var m Material
	if err == nil {
		t, m, err = r.cfg.build(f, r.now())
	}
	if err == nil {
		err = r.target.SetTrust(t)
	}
	if err != nil {
		r.failed, r.lastErr = s, err
		r.log.Error("upstream trust reload failed; keeping the trust in use until the files change again", zap.Error(err))
		return false, err
	}
	r.applied, r.failed, r.lastErr = s, state{}, nil
	r.warn(f, m)
	r.log.Info("upstream trust reloaded; new connections use it, transfers under way finish on the old one", r.describe(m)...)
	return true, nil
}

// Run calls Check every Interval until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	if r.cfg.CABundle == "" && r.cfg.ClientCert == "" {
		return // nothing on disk to follow; pins change with the configuration
	}
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = r.Check() // Check logs
		}
	}
}

func (r *Reloader) describe(m Material) []zap.Field {
	fields := []zap.Field{zap.Int("pins", m.Pins)}
	if m.CAs == nil {
		fields = append(fields, zap.String("roots", "system"))
	} else {
		fields = append(fields, zap.String("ca_bundle", r.cfg.CABundle), zap.Int("cas", len(m.CAs)))
	}
	if c := m.ClientCert; c != nil {
		fields = append(fields, zap.String("client_cert", r.cfg.ClientCert), zap.String("client_subject", c.Subject.String()),
			zap.String("client_serial", c.SerialNumber.Text(16)), zap.Time("client_not_after", c.NotAfter))
	}
	return fields
}

// warn logs what loads but will likely fail or leak later.
func (r *Reloader) warn(f files, m Material) {
	now := r.now()
	for _, ca := range m.CAs {
		if now.After(ca.NotAfter) {
			r.log.Warn("CA bundle holds an expired certificate; chains through it will fail",
				zap.String("ca_bundle", r.cfg.CABundle), zap.String("subject", ca.Subject.String()), zap.Time("not_after", ca.NotAfter))
		}
	}
	if c := m.ClientCert; c != nil {
		if now.Before(c.NotBefore) {
			r.log.Warn("client certificate is not valid yet (check this clock)", zap.String("client_cert", r.cfg.ClientCert), zap.Time("not_before", c.NotBefore))
		}
		if !clientAuthUsage(c) {
			r.log.Warn("client certificate is not for client authentication (extended key usage); servers will refuse it",
				zap.String("client_cert", r.cfg.ClientCert))
		}
	}
	if r.cfg.ClientKey != "" && f.keyMode.Perm()&0o077 != 0 {
		r.log.Warn("client key file is open to other users; chmod 600 it",
			zap.String("client_key", r.cfg.ClientKey), zap.Stringer("mode", f.keyMode.Perm()))
	}
}

func clientAuthUsage(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
