// Package preflight checks a gateway installation before (or while) it runs: the
// configuration, the modes of files holding secrets, vendor keys, listen addresses, the
// upstream's reachability and certificates, and each class's signed manifest. Every finding
// names the problem and the fix. `fotagate check` prints them; its exit status is for scripts.
package preflight

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/gateway/admin"
	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/gateway/upstream"
)

// Severity orders findings.
type Severity string

const (
	OK   Severity = "ok"
	Warn Severity = "warn"
	Fail Severity = "fail"
)

// Finding is one result.
type Finding struct {
	Severity Severity `json:"severity"`
	Subject  string   `json:"subject"`
	Detail   string   `json:"detail"`
	Fix      string   `json:"fix,omitempty"`
}

// Options shape a check.
type Options struct {
	Offline bool             // skip the upstream
	Now     func() time.Time // nil: time.Now
	Timeout time.Duration    // per upstream fetch; default 20s
}

type checker struct {
	opt      Options
	findings []Finding
}

func (c *checker) add(sev Severity, subject, fix, format string, args ...any) {
	c.findings = append(c.findings, Finding{Severity: sev, Subject: subject, Detail: fmt.Sprintf(format, args...), Fix: fix})
}

// Failed reports whether any finding is a failure.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Fail {
			return true
		}
	}
	return false
}

// Run checks a loaded configuration (see Config for loading it).
func Run(ctx context.Context, cfg *config.Config, opt Options) []Finding {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 20 * time.Second
	}
	c := &checker{opt: opt}
	c.registry(cfg)
	keys := c.vendorKeys(cfg)
	c.adminToken(cfg)
	c.listen("devices.listen", cfg.Devices.Listen)
	if cfg.Admin.Listen != "" {
		c.listen("admin.listen", cfg.Admin.Listen)
	}
	c.stateDir(cfg)
	c.gatewayTLS(cfg)
	c.pemCerts("upstream.ca_bundle", cfg.Upstream.CABundle)
	c.pemCerts("upstream.client_cert", cfg.Upstream.ClientCert)
	if len(cfg.Classes) == 0 {
		c.add(Warn, "classes", "add a class with the https URL of its manifest", "no device classes configured: the gateway has nothing to offer")
	}
	if !opt.Offline && len(cfg.Classes) > 0 {
		c.upstream(ctx, cfg, keys)
	}
	return c.findings
}

// Config loads the configuration and reports its problems as findings.
func Config(path string) (*config.Config, []Finding) {
	cfg, err := config.Load(path, nil)
	if err != nil {
		return nil, []Finding{{Severity: Fail, Subject: "config " + path, Detail: err.Error(),
			Fix: "correct the fields named above; deploy/fotagate.yaml documents every option"}}
	}
	return cfg, []Finding{{Severity: OK, Subject: "config " + displayPath(path), Detail: "loads and validates"}}
}

func displayPath(p string) string {
	if p == "" {
		return "(defaults)"
	}
	return p
}

func (c *checker) registry(cfg *config.Config) {
	r, err := registry.Load(cfg.Registry, zap.NewNop())
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.add(Fail, "registry "+cfg.Registry, "provision a device: fotagate keys add DEVICE --class CLASS --config FILE", "missing")
	case err != nil:
		c.add(Fail, "registry "+cfg.Registry, "follow the hint in the message", "%v", err)
	case r.Len() == 0:
		c.add(Warn, "registry "+cfg.Registry, "fotagate keys add DEVICE --class CLASS", "no devices provisioned")
	default:
		classes := map[string]bool{}
		for _, cl := range cfg.Classes {
			classes[cl.Name] = true
		}
		var orphans []string
		for _, d := range r.List() {
			if !classes[d.Class] {
				orphans = append(orphans, d.ID+" ("+d.Class+")")
			}
		}
		c.add(OK, "registry "+cfg.Registry, "", "%d devices, mode 0600", r.Len())
		if len(orphans) > 0 && len(cfg.Classes) > 0 {
			c.add(Warn, "registry", "add their classes under classes:, or remove the devices",
				"devices of classes the gateway does not serve: %s", strings.Join(orphans, ", "))
		}
	}
}

func (c *checker) vendorKeys(cfg *config.Config) []ed25519.PublicKey {
	var keys []ed25519.PublicKey
	for _, f := range cfg.Upstream.VendorKeys {
		k, err := manifest.LoadPublicKey(f)
		if err != nil {
			c.add(Fail, "vendor key "+f, "copy the vendor's .pub file (fotagate keygen output) here", "%v", err)
			continue
		}
		keys = append(keys, k)
		c.add(OK, "vendor key "+f, "", "key id %s", manifest.KeyIDOf(k))
	}
	return keys
}

func (c *checker) adminToken(cfg *config.Config) {
	if cfg.Admin.Listen == "" || cfg.Admin.TokenFile == "" {
		if cfg.Admin.Listen != "" && cfg.Admin.AllowAnonymous {
			c.add(Warn, "admin", "set admin.token_file and allow_anonymous: false", "the admin API and metrics are readable without credentials")
		}
		return
	}
	if _, err := admin.TokenFileAuth(cfg.Admin.TokenFile); err != nil {
		c.add(Fail, "admin.token_file", "write a random token (openssl rand -hex 32 > FILE; chmod 600 FILE)", "%v", err)
		return
	}
	c.add(OK, "admin.token_file", "", "present, private")
}

// gatewayTLS checks the local CA root the gateway keeps (tls.mode local_ca); before the first
// start there is none yet, which is fine.
func (c *checker) gatewayTLS(cfg *config.Config) {
	if cfg.TLS.Mode != gatewaytls.ModeLocalCA {
		return
	}
	dir := filepath.Join(cfg.StateDir, gatewaytls.RootDir)
	key := filepath.Join(dir, gatewaytls.RootKeyFile)
	fi, err := os.Stat(key)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.add(OK, "tls local CA", "", "no root yet: the gateway makes one on first start (then: fotagate ca export)")
		return
	case err != nil:
		c.add(Fail, "tls local CA "+key, "make it readable by the gateway's user", "%v", err)
		return
	case fi.Mode().Perm()&0o077 != 0:
		c.add(Fail, "tls local CA "+key, "run: chmod 600 "+key, "root key is open to other users (mode %04o)", fi.Mode().Perm())
		return
	}
	c.pemCerts("tls local CA root", filepath.Join(dir, gatewaytls.RootCertFile))
}

func (c *checker) listen(field, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.add(Warn, field+" "+addr, "stop what holds the port (is the gateway already running?) or choose another address", "cannot listen: %v", err)
		return
	}
	ln.Close()
	c.add(OK, field+" "+addr, "", "free to listen on")
}

func (c *checker) stateDir(cfg *config.Config) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		c.add(Fail, "state_dir "+cfg.StateDir, "create it, owned by the gateway's user", "%v", err)
		return
	}
	f, err := os.CreateTemp(cfg.StateDir, ".check-*")
	if err != nil {
		c.add(Fail, "state_dir "+cfg.StateDir, "make it writable by the gateway's user", "%v", err)
		return
	}
	f.Close()
	os.Remove(f.Name())
	c.add(OK, "state_dir "+cfg.StateDir, "", "writable")
}

// pemCerts reports the expiry of every certificate in a PEM file.
func (c *checker) pemCerts(field, path string) {
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		c.add(Fail, field+" "+path, "point the option at a readable PEM file", "%v", err)
		return
	}
	now := c.opt.Now()
	n := 0
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			c.add(Fail, field+" "+path, "replace the damaged certificate", "certificate %d: %v", n+1, err)
			continue
		}
		n++
		left := cert.NotAfter.Sub(now)
		switch {
		case left <= 0:
			c.add(Fail, field+" "+path, "get a renewed certificate", "%q expired on %s", cert.Subject.CommonName, cert.NotAfter.Format(time.DateOnly))
		case left < 30*24*time.Hour:
			c.add(Warn, field+" "+path, "renew it soon", "%q expires on %s (%d days)", cert.Subject.CommonName, cert.NotAfter.Format(time.DateOnly), int(left.Hours()/24))
		}
	}
	if n == 0 {
		c.add(Fail, field+" "+path, "the file must hold PEM CERTIFICATE blocks", "no certificate found")
		return
	}
	c.add(OK, field+" "+path, "", "%d certificate(s) parse", n)
}

func (c *checker) upstream(ctx context.Context, cfg *config.Config, keys []ed25519.PublicKey) {
	up, err := upstream.New(upstream.Config{CABundle: cfg.Upstream.CABundle, Pins: cfg.Upstream.Pins,
		ClientCert: cfg.Upstream.ClientCert, ClientKey: cfg.Upstream.ClientKey, Transport: cfg.Upstream.Transport,
		Retries: -1, Timeout: c.opt.Timeout}, zap.NewNop())
	if err != nil {
		c.add(Fail, "upstream", "correct the upstream options named in the message", "%v", err)
		return
	}
	defer up.Close()
	v := &manifest.Verifier{Keys: keys, Now: c.opt.Now}
	for _, cl := range cfg.Classes {
		subject := "class " + cl.Name
		fctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
		doc, err := up.FetchDoc(fctx, cl.Manifest, "", manifest.MaxDocSize)
		if err != nil {
			cancel()
			c.add(Fail, subject, upstreamFix(err), "manifest %s: %v", cl.Manifest, err)
			continue
		}
		var sigBody []byte
		if u, perr := url.Parse(cl.Manifest); perr == nil {
			if sig, err := up.FetchDoc(fctx, manifest.SignatureURL(u).String(), "", manifest.MaxSigSize); err == nil {
				sigBody = sig.Body
			}
		}
		cancel()
		m, err := v.Verify(doc.Body, sigBody, cl.Name)
		if err != nil {
			c.add(Fail, subject, manifestFix(err), "%v", err)
			continue
		}
		sev, fix := OK, ""
		if m.Expires.Sub(c.opt.Now()) < 7*24*time.Hour {
			sev, fix = Warn, "ask the vendor to re-publish before it expires (fotagate publish sets a new expiry)"
		}
		c.add(sev, subject, fix, "seq %d (%s), %d bytes, signed by %s, over %s, expires %s",
			m.Seq, m.Version, m.Size, m.KeyID, doc.Proto, m.Expires.Format(time.RFC3339))
	}
}

func upstreamFix(err error) string {
	switch {
	case errors.Is(err, upstream.ErrUnknownAuthority):
		return "put the CA that signs the vendor's certificate into upstream.ca_bundle (or remove ca_bundle to use the system roots)"
	case errors.Is(err, upstream.ErrHostMismatch):
		return "use the host name the vendor's certificate is issued for in the manifest URL"
	case errors.Is(err, upstream.ErrCertExpired):
		return "the vendor's certificate is expired or not yet valid: check this machine's clock, then tell the vendor"
	case errors.Is(err, upstream.ErrPinMismatch):
		return "update upstream.pins to the pins the message lists, after confirming the vendor changed keys"
	case errors.Is(err, upstream.ErrClientCertRefused):
		return "check upstream.client_cert/client_key: the vendor refused them"
	case errors.Is(err, upstream.ErrStatus):
		return "check the manifest URL: the server answered with an error status"
	}
	return "check the network path and the URL"
}

func manifestFix(err error) string {
	switch {
	case errors.Is(err, manifest.ErrUnsigned):
		return "publish the manifest.json.sig beside manifest.json"
	case errors.Is(err, manifest.ErrUnknownKey):
		return "add the vendor's current public key to upstream.vendor_keys"
	case errors.Is(err, manifest.ErrExpired):
		return "ask the vendor to re-publish: fotagate publish sets a new expiry"
	case errors.Is(err, manifest.ErrWrongClass):
		return "the URL serves another class's manifest: fix classes[].manifest"
	}
	return "the manifest or its signature is not what the vendor signed: do not serve it; contact the vendor"
}
