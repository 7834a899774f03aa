// Package config is the gateway's one configuration file: its struct, its defaults (in one
// function), loading (YAML file, then command-line flags over it) and validation whose errors
// name the field and the fix. gateway/cmd/fotagate reads it and wires the other packages.
//
// Parsing uses github.com/knadh/koanf: it layers defaults, a file and pflag flags with one
// key space, so "--listen" and "devices.listen:" cannot disagree about precedence.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/protocol"
)

// Config is the whole gateway configuration. deploy/fotagate.yaml documents every field.
type Config struct {
	GatewayID string   `koanf:"gateway_id"`
	StateDir  string   `koanf:"state_dir"` // registry, cache and keys live here unless set
	Registry  string   `koanf:"registry"`  // device registry file (mode 0600)
	Log       Log      `koanf:"log"`
	Devices   Devices  `koanf:"devices"`
	Admin     Admin    `koanf:"admin"`
	Cache     Cache    `koanf:"cache"`
	Upstream  Upstream `koanf:"upstream"`
	Classes   []Class  `koanf:"classes"`
	TLS       TLS      `koanf:"tls"`
}

// TLS is the gateway's own HTTPS (admin API, metrics, dashboard), managed by certmagic
// (certs/gatewaytls). An empty Mode serves plain HTTP, which is allowed on loopback only.
type TLS struct {
	Mode               string        `koanf:"mode"`  // "", "acme" or "local_ca"
	Names              []string      `koanf:"names"` // DNS names and IP addresses of the gateway
	RenewalWindowRatio float64       `koanf:"renewal_window_ratio"`
	RenewCheckInterval time.Duration `koanf:"renew_check_interval"`
	ACME               TLSACME       `koanf:"acme"`
	LocalCA            TLSLocalCA    `koanf:"local_ca"`
}

// TLSACME configures ACME (a public CA, or an in-house one such as step-ca).
type TLSACME struct {
	DirectoryURL string `koanf:"directory_url"`
	CARoots      string `koanf:"ca_roots"`
	Email        string `koanf:"email"`
	Profile      string `koanf:"profile"`
	Challenge    string `koanf:"challenge"` // http-01 or tls-alpn-01
	ListenHost   string `koanf:"listen_host"`
	HTTPPort     int    `koanf:"http_port"`
	TLSALPNPort  int    `koanf:"tls_alpn_port"`
}

// TLSLocalCA configures the LAN-only local CA.
type TLSLocalCA struct {
	LeafLifetime time.Duration `koanf:"leaf_lifetime"`
	RootLifetime time.Duration `koanf:"root_lifetime"`
	RootName     string        `koanf:"root_name"`
}

// GatewayTLS is the certs/gatewaytls configuration these settings describe.
func (c *Config) GatewayTLS() gatewaytls.Config {
	t := c.TLS
	return gatewaytls.Config{
		Mode: t.Mode, Names: t.Names, StateDir: c.StateDir,
		RenewalWindowRatio: t.RenewalWindowRatio, RenewCheckInterval: t.RenewCheckInterval,
		ACME: gatewaytls.ACME{DirectoryURL: t.ACME.DirectoryURL, CARootsFile: t.ACME.CARoots, Email: t.ACME.Email,
			Profile: t.ACME.Profile, Challenge: t.ACME.Challenge, ListenHost: t.ACME.ListenHost,
			HTTPPort: t.ACME.HTTPPort, TLSALPNPort: t.ACME.TLSALPNPort},
		LocalCA: gatewaytls.LocalCA{LeafLifetime: t.LocalCA.LeafLifetime, RootLifetime: t.LocalCA.RootLifetime, RootName: t.LocalCA.RootName},
	}
}

// Log selects the log format: "console" for people, "json" for machines.
type Log struct {
	Format string `koanf:"format"`
	Level  string `koanf:"level"`
}

// Devices configures the device protocol listener.
type Devices struct {
	Listen           string        `koanf:"listen"`
	MaxPayload       int           `koanf:"max_payload"`
	MaxSessions      int           `koanf:"max_sessions"`
	HandshakeTimeout time.Duration `koanf:"handshake_timeout"`
	IdleTimeout      time.Duration `koanf:"idle_timeout"`
	FailRate         float64       `koanf:"fail_rate"` // failed handshakes per second per source
	FailBurst        int           `koanf:"fail_burst"`
}

// Admin configures the admin HTTP API and metrics.
type Admin struct {
	Listen    string `koanf:"listen"` // empty disables it
	TokenFile string `koanf:"token_file"`
	// ClientCA is a PEM file of the CAs whose client certificates are accepted instead of the
	// token (needs tls.mode): operators' browsers or tools present one.
	ClientCA       string `koanf:"client_ca"`
	AllowAnonymous bool   `koanf:"allow_anonymous"`
}

// Cache configures the verified image cache.
type Cache struct {
	Dir         string `koanf:"dir"`
	MaxBytes    int64  `koanf:"max_bytes"`
	MemoryBytes int64  `koanf:"memory_bytes"` // images served from memory (cache.HoldInMemory)
}

// Upstream configures the vendor firmware server client.
type Upstream struct {
	Transport    string        `koanf:"transport"` // auto, h2 or h3
	CABundle     string        `koanf:"ca_bundle"` // PEM; empty means the system roots
	Pins         []string      `koanf:"pins"`      // "sha256/<base64 SPKI hash>"
	ClientCert   string        `koanf:"client_cert"`
	ClientKey    string        `koanf:"client_key"`
	Timeout      time.Duration `koanf:"timeout"`
	Retries      int           `koanf:"retries"`
	PollInterval time.Duration `koanf:"poll_interval"`
	VendorKeys   []string      `koanf:"vendor_keys"` // public key files
	// TrustReloadInterval is how often the CA bundle and client certificate files are
	// re-read; a change applies to new connections without a restart.
	TrustReloadInterval time.Duration `koanf:"trust_reload_interval"`
}

// Class maps a device class to the URL of its signed manifest.
type Class struct {
	Name     string `koanf:"name"`
	Manifest string `koanf:"manifest"`
}

// Default returns the defaults every field starts from.
func Default() Config {
	return Config{
		GatewayID: "fotagate",
		StateDir:  "/var/lib/fotagate",
		Log:       Log{Format: "console", Level: "info"},
		Devices: Devices{
			Listen: ":7683", MaxPayload: protocol.MaxPayload, MaxSessions: 10000,
			HandshakeTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second, FailRate: 1, FailBurst: 10,
		},
		Admin: Admin{Listen: "127.0.0.1:7680"},
		Cache: Cache{MaxBytes: 1 << 30, MemoryBytes: 64 << 20},
		Upstream: Upstream{Transport: "auto", Timeout: 60 * time.Second, Retries: 4, PollInterval: 5 * time.Minute,
			TrustReloadInterval: 10 * time.Second},
	}
}

// Flags are the command-line overrides, each mapped to its key in the file.
var flagKeys = map[string]string{
	"gateway-id":   "gateway_id",
	"state-dir":    "state_dir",
	"registry":     "registry",
	"listen":       "devices.listen",
	"admin-listen": "admin.listen",
	"log-format":   "log.format",
	"log-level":    "log.level",
	"transport":    "upstream.transport",
	"ca-bundle":    "upstream.ca_bundle",
}

// AddFlags declares the overriding flags on fs.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("gateway-id", "", "gateway ID sent to devices (gateway_id)")
	fs.String("state-dir", "", "directory for registry, cache and keys (state_dir)")
	fs.String("registry", "", "device registry file (registry)")
	fs.String("listen", "", "device protocol address (devices.listen)")
	fs.String("admin-listen", "", "admin API address, empty to disable (admin.listen)")
	fs.String("log-format", "", "console or json (log.format)")
	fs.String("log-level", "", "debug, info, warn or error (log.level)")
	fs.String("transport", "", "upstream transport: auto, h2 or h3 (upstream.transport)")
	fs.String("ca-bundle", "", "PEM file of upstream CAs (upstream.ca_bundle)")
}

// DefaultPath is where the gateway's configuration file lives unless a flag says otherwise.
const DefaultPath = "/etc/fotagate/fotagate.yaml"

// RegistryPath is the registry file the configuration at path names (defaults filled in,
// nothing else validated), so provisioning tools edit the file the gateway serves. An empty
// path means the defaults; a missing DefaultPath counts as empty.
func RegistryPath(path string) (string, error) {
	if path == DefaultPath {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			path = ""
		}
	}
	c, err := load(path, nil)
	if err != nil {
		return "", err
	}
	return c.Registry, nil
}

// Load reads defaults, then the YAML file at path (if any), then the flags the user set, and
// validates the result.
func Load(path string, fs *pflag.FlagSet) (*Config, error) {
	c, err := load(path, fs)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func load(path string, fs *pflag.FlagSet) (*Config, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return nil, err
	}
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if fs != nil {
		p := posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
			key, ok := flagKeys[f.Name]
			if !ok || !f.Changed {
				return "", nil
			}
			return key, posflag.FlagVal(fs, f)
		})
		if err := k.Load(p, nil); err != nil {
			return nil, err
		}
	}
	var c Config
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{Tag: "koanf"}); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.fillPaths()
	return &c, nil
}

func (c *Config) fillPaths() {
	if c.Registry == "" {
		c.Registry = filepath.Join(c.StateDir, "devices.json")
	}
	if c.Cache.Dir == "" {
		c.Cache.Dir = filepath.Join(c.StateDir, "cache")
	}
}

// Validate checks every field and returns all problems at once, each naming the field and
// the fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if err := protocol.CheckGatewayID(c.GatewayID); err != nil {
		bad("gateway_id", "%v", err)
	}
	if c.StateDir == "" {
		bad("state_dir", "must be set (for example /var/lib/fotagate)")
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		bad("log.format", "%q: use console or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	if _, _, err := net.SplitHostPort(c.Devices.Listen); err != nil {
		bad("devices.listen", "%q is not host:port (for example :7683)", c.Devices.Listen)
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			bad("admin.listen", "%q is not host:port (for example 127.0.0.1:7680)", c.Admin.Listen)
		}
		if host, _, err := net.SplitHostPort(c.Admin.Listen); err == nil && c.TLS.Mode == "" && !isLoopback(host) {
			bad("admin.listen", "%q is reachable beyond this machine but tls.mode is empty: set tls.mode (acme or local_ca) so the token and fleet data never cross the network in clear, or listen on 127.0.0.1", c.Admin.Listen)
		}
		if c.Admin.TokenFile == "" && c.Admin.ClientCA == "" && !c.Admin.AllowAnonymous {
			bad("admin.token_file", "set a token file or admin.client_ca, or allow_anonymous: true to serve the API without credentials")
		}
		if c.Admin.ClientCA != "" && c.TLS.Mode == "" {
			bad("admin.client_ca", "client certificates need TLS: set tls.mode (acme or local_ca)")
		}
	}
	if c.Devices.MaxPayload < protocol.MinPayload || c.Devices.MaxPayload > protocol.MaxPayload {
		bad("devices.max_payload", "%d: use %d to %d", c.Devices.MaxPayload, protocol.MinPayload, protocol.MaxPayload)
	}
	if c.Devices.MaxSessions < 1 {
		bad("devices.max_sessions", "%d: must be at least 1", c.Devices.MaxSessions)
	}
	if c.Devices.HandshakeTimeout <= 0 || c.Devices.IdleTimeout <= 0 {
		bad("devices.handshake_timeout/idle_timeout", "must be positive durations such as 10s")
	}
	if c.Devices.FailRate <= 0 || c.Devices.FailBurst < 1 {
		bad("devices.fail_rate/fail_burst", "must be positive")
	}
	if c.Cache.MaxBytes < 1<<20 {
		bad("cache.max_bytes", "%d: at least 1 MiB (1048576)", c.Cache.MaxBytes)
	}
	if c.Cache.MemoryBytes < 0 {
		bad("cache.memory_bytes", "%d: 0 (none) or more", c.Cache.MemoryBytes)
	}
	switch c.Upstream.Transport {
	case "auto", "h2", "h3":
	default:
		bad("upstream.transport", "%q: use auto, h2 or h3", c.Upstream.Transport)
	}
	if (c.Upstream.ClientCert == "") != (c.Upstream.ClientKey == "") {
		bad("upstream.client_cert/client_key", "set both or neither")
	}
	if c.Upstream.Timeout <= 0 || c.Upstream.PollInterval <= 0 || c.Upstream.Retries < 0 {
		bad("upstream.timeout/poll_interval/retries", "timeouts must be positive, retries >= 0")
	}
	if len(c.Classes) > 0 && len(c.Upstream.VendorKeys) == 0 {
		bad("upstream.vendor_keys", "list at least one vendor public key file (fotagate keygen makes one): unsigned manifests are refused")
	}
	seen := map[string]bool{}
	for i, cl := range c.Classes {
		field := fmt.Sprintf("classes[%d]", i)
		if err := protocol.CheckClass(cl.Name); err != nil {
			bad(field+".name", "%v", err)
		}
		if seen[cl.Name] {
			bad(field+".name", "%q is listed twice", cl.Name)
		}
		seen[cl.Name] = true
		u, err := url.Parse(cl.Manifest)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			bad(field+".manifest", "%q: must be an https:// URL (no plaintext)", cl.Manifest)
		}
	}
	if c.TLS.Mode != "" {
		if err := c.GatewayTLS().Validate(); err != nil {
			bad("tls", "%v", err)
		}
	}
	if c.Upstream.TrustReloadInterval <= 0 {
		bad("upstream.trust_reload_interval", "must be a positive duration such as 10s")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  %w", joinIndented(errs))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func joinIndented(errs []error) error {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return errors.New(strings.Join(lines, "\n  "))
}
