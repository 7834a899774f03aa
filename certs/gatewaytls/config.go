package gatewaytls

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// Modes for Config.Mode.
const (
	// ModeACME gets the certificates from an ACME CA: a public one, or an in-house one such
	// as step-ca.
	ModeACME = "acme"
	// ModeLocalCA issues them from the gateway's own root, for LAN-only gateways that no
	// ACME CA can reach. Clients trust that root once (ExportRoot).
	ModeLocalCA = "local_ca"
)

// Challenges for ACME.Challenge.
const (
	// ChallengeHTTP01 answers on plain HTTP: the CA connects to port 80 of each name.
	ChallengeHTTP01 = "http-01"
	// ChallengeTLSALPN01 answers inside a TLS handshake: the CA connects to port 443.
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// Where the files live under Config.StateDir.
const (
	// StorageDir is certmagic's FileStorage: certificates, their keys, the ACME account and
	// locks, in certmagic's own layout.
	StorageDir = "tls"
	// RootDir holds the local CA root: RootCertFile (public) and RootKeyFile (mode 0600).
	RootDir      = "localca"
	RootCertFile = "root.crt"
	RootKeyFile  = "root.key"
)

// Defaults applied to zero fields.
const (
	DefaultLeafLifetime       = 7 * 24 * time.Hour
	DefaultRootLifetime       = 10 * 365 * 24 * time.Hour
	DefaultRootName           = "fotagate gateway local CA"
	DefaultRenewCheckInterval = certmagic.DefaultRenewCheckInterval
	DefaultHTTPPort           = 80
	DefaultTLSALPNPort        = 443
)

// ErrConfig is wrapped by every Config error; the message names the field and the fix.
var ErrConfig = errors.New("gateway TLS: bad configuration")

// Config says how the gateway gets the certificates of its own HTTPS endpoint (admin API,
// metrics). The zero value of each field means the default given with it.
type Config struct {
	// Mode is ModeACME or ModeLocalCA. Required.
	Mode string
	// Names are the DNS names and IP addresses clients reach the gateway by. certmagic
	// manages one certificate per name; a client that sends no server name (one dialling an
	// IP address) gets the certificate of the address it dialled if that is listed, else that
	// of Names[0]; a client that sends a name not listed fails the handshake. Wildcards are
	// refused: they need DNS-01, which the gateway does not do.
	Names []string
	// StateDir is the gateway's state directory; StorageDir and RootDir are made in it.
	StateDir string

	ACME    ACME
	LocalCA LocalCA

	// RenewalWindowRatio is the part of a certificate's lifetime, counted back from its
	// expiry, in which certmagic renews it (default 1/3). ACME renewal information (ARI),
	// where the CA offers it, may start renewal earlier.
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certmagic looks for certificates to renew (default
	// 10m). Certificates that live less than five intervals would be renewed at every look.
	RenewCheckInterval time.Duration
}

// ACME configures ModeACME. By configuring it the operator agrees to the CA's terms of
// service.
type ACME struct {
	// DirectoryURL is the CA's ACME directory, for example
	// https://acme-v02.api.letsencrypt.org/directory or https://ca.plant.lan/acme/acme/directory
	// (step-ca). Required.
	DirectoryURL string
	// CARootsFile is a PEM file of the roots that sign the directory's own HTTPS certificate,
	// for an in-house CA; they replace the system roots for talking to it. Empty means the
	// system roots.
	CARootsFile string
	// Email is the ACME account's contact; the CA sends expiry warnings there. Optional.
	Email string
	// Profile selects a certificate profile the CA offers (for example Let's Encrypt's
	// "shortlived", which IP address certificates need). Empty means the CA's default.
	Profile string
	// Challenge is ChallengeHTTP01 (default) or ChallengeTLSALPN01.
	Challenge string
	// ListenHost is the address the challenge listener binds; empty means all.
	ListenHost string
	// HTTPPort is where certmagic listens for HTTP-01 while a challenge runs (default 80).
	// The CA always connects to port 80: forward it here if this is another port.
	HTTPPort int
	// TLSALPNPort is where TLS-ALPN-01 is answered (default 443); the CA always connects to
	// 443. Make it the admin listener's port and the admin server answers it itself (its
	// TLSConfig does); otherwise certmagic listens there while a challenge runs.
	TLSALPNPort int
}

// LocalCA configures ModeLocalCA.
type LocalCA struct {
	// LeafLifetime is how long an issued certificate is valid (default 7 days). Short, so
	// renewal runs often enough that it is known to work; certmagic renews it in time.
	LeafLifetime time.Duration
	// RootLifetime is the validity of a root made on first start (default 10 years). An
	// existing root keeps its own.
	RootLifetime time.Duration
	// RootName is the common name of a root made on first start, as clients will show it
	// (default "fotagate gateway local CA").
	RootName string
}

// withDefaults returns c with every zero field set to its default and the names normalised.
func (c Config) withDefaults() Config {
	if c.RenewalWindowRatio == 0 {
		c.RenewalWindowRatio = certmagic.DefaultRenewalWindowRatio
	}
	if c.RenewCheckInterval == 0 {
		c.RenewCheckInterval = DefaultRenewCheckInterval
	}
	if c.ACME.Challenge == "" {
		c.ACME.Challenge = ChallengeHTTP01
	}
	if c.ACME.HTTPPort == 0 {
		c.ACME.HTTPPort = DefaultHTTPPort
	}
	if c.ACME.TLSALPNPort == 0 {
		c.ACME.TLSALPNPort = DefaultTLSALPNPort
	}
	if c.LocalCA.LeafLifetime == 0 {
		c.LocalCA.LeafLifetime = DefaultLeafLifetime
	}
	if c.LocalCA.RootLifetime == 0 {
		c.LocalCA.RootLifetime = DefaultRootLifetime
	}
	if c.LocalCA.RootName == "" {
		c.LocalCA.RootName = DefaultRootName
	}
	names := make([]string, len(c.Names))
	for i, n := range c.Names {
		names[i] = normalName(n)
	}
	c.Names = names
	return c
}

// normalName is the form certmagic files and matches a name under: lower case, and an IP
// address in its canonical text.
func normalName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if ip := net.ParseIP(n); ip != nil {
		return ip.String()
	}
	return n
}

// Validate checks c, with defaults applied for its zero fields, and returns every problem at
// once, each naming the field and the fix. Files are not read: New does that.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Mode {
	case ModeACME, ModeLocalCA:
	default:
		bad("Mode", "%q: use %q (a CA reachable over ACME) or %q (the gateway's own root, for a LAN)",
			c.Mode, ModeACME, ModeLocalCA)
	}
	if c.StateDir == "" {
		bad("StateDir", "must be set (the gateway's state directory, for example /var/lib/fotagate)")
	}
	if len(c.Names) == 0 {
		bad("Names", "list the DNS names and IP addresses clients reach the gateway by (for example gateway.plant.lan, 192.168.1.10)")
	}
	seen := map[string]bool{}
	for i, n := range c.Names {
		field := fmt.Sprintf("Names[%d]", i)
		switch {
		case seen[n]:
			bad(field, "%q is listed twice", n)
		case strings.Contains(n, "*"):
			bad(field, "%q: wildcard certificates need the DNS-01 challenge, which the gateway does not do; list each name", n)
		case net.ParseIP(n) == nil && !validDNSName(n):
			bad(field, "%q is neither an IP address nor a DNS name (letters, digits, '-' and '.' only, no leading or trailing dot)", n)
		}
		seen[n] = true
	}
	if !(c.RenewalWindowRatio > 0 && c.RenewalWindowRatio < 1) {
		bad("RenewalWindowRatio", "%v: use a fraction between 0 and 1, or 0 for the default 1/3", c.RenewalWindowRatio)
	}
	if c.RenewCheckInterval < 0 {
		bad("RenewCheckInterval", "%s is negative; use a positive duration, or 0 for the default %s", c.RenewCheckInterval, DefaultRenewCheckInterval)
	}
	switch c.Mode {
	case ModeACME:
		c.ACME.validate(bad)
	case ModeLocalCA:
		l := c.LocalCA
		if l.LeafLifetime < time.Second || l.RootLifetime < time.Second {
			bad("LocalCA.LeafLifetime/RootLifetime", "must be positive durations (for example 168h and 87600h), or 0 for the defaults")
		} else if l.LeafLifetime >= l.RootLifetime {
			bad("LocalCA.LeafLifetime", "%s is not below RootLifetime %s; shorten it (default %s)", l.LeafLifetime, l.RootLifetime, DefaultLeafLifetime)
		}
		if c.RenewCheckInterval > 0 && l.LeafLifetime < 5*c.RenewCheckInterval {
			bad("LocalCA.LeafLifetime", "%s is under five RenewCheckIntervals (%s): every check would renew; lengthen it or check more often",
				l.LeafLifetime, c.RenewCheckInterval)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return fmt.Errorf("%w:\n  %s", ErrConfig, strings.Join(lines, "\n  "))
}

func (a ACME) validate(bad func(field, format string, args ...any)) {
	u, err := url.Parse(a.DirectoryURL)
	switch {
	case a.DirectoryURL == "":
		bad("ACME.DirectoryURL", "must be set: the CA's ACME directory, for example https://acme-v02.api.letsencrypt.org/directory")
	case err != nil || u.Scheme != "https" || u.Host == "":
		bad("ACME.DirectoryURL", "%q: must be an https:// URL (ACME runs over HTTPS only)", a.DirectoryURL)
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n")) {
		bad("ACME.Email", "%q is not an e-mail address; leave it empty for no contact", a.Email)
	}
	switch a.Challenge {
	case ChallengeHTTP01, ChallengeTLSALPN01:
	default:
		bad("ACME.Challenge", "%q: use %q or %q", a.Challenge, ChallengeHTTP01, ChallengeTLSALPN01)
	}
	for _, p := range []struct {
		field string
		v     int
	}{{"ACME.HTTPPort", a.HTTPPort}, {"ACME.TLSALPNPort", a.TLSALPNPort}} {
		if p.v < 1 || p.v > 65535 {
			bad(p.field, "%d: use a TCP port from 1 to 65535, or 0 for the default", p.v)
		}
	}
	if a.ListenHost != "" && net.ParseIP(a.ListenHost) == nil && !validDNSName(a.ListenHost) {
		bad("ACME.ListenHost", "%q: use an address of this host (no port), or empty for all", a.ListenHost)
	}
}

// validDNSName accepts LDH host names: what the gateway may be called on a LAN or in DNS.
func validDNSName(n string) bool {
	if n == "" || len(n) > 253 || !certmagic.SubjectQualifiesForCert(n) {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
