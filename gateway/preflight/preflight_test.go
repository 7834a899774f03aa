package preflight

import (
	"context"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/certs/localca"
	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/demo"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
)

const class = "esp8266-4m"

// setup publishes a release on a real HTTPS upstream and writes a valid configuration.
func setup(t *testing.T, expires time.Time) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	pub, priv, _ := manifest.GenerateKey(rand.Reader)
	pubFile := filepath.Join(dir, "vendor.pub")
	manifest.SavePublicKey(pubFile, pub)
	img := filepath.Join(dir, "fw.bin")
	os.WriteFile(img, make([]byte, 5000), 0o644)
	site := filepath.Join(dir, "site")
	if _, err := manifest.PublishDir(site, img, manifest.PublishOptions{Class: class, Version: "1.2", Seq: 4, Expires: expires}, priv); err != nil {
		t.Fatal(err)
	}
	up, err := demo.StartUpstream(site)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	ca := filepath.Join(dir, "ca.pem")
	up.CA.WriteCertPEM(ca)
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Registry = filepath.Join(cfg.StateDir, "devices.json")
	cfg.Cache.Dir = filepath.Join(cfg.StateDir, "cache")
	cfg.Devices.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = ""
	cfg.Upstream.CABundle = ca
	cfg.Upstream.VendorKeys = []string{pubFile}
	cfg.Classes = []config.Class{{Name: class, Manifest: up.URL + "/" + class + "/manifest.json"}}
	reg, err := registry.LoadOrCreate(cfg.Registry, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	reg.Add("dev-1", class, rand.Reader)
	return &cfg, dir
}

func find(fs []Finding, subject string) (Finding, bool) {
	for _, f := range fs {
		if strings.HasPrefix(f.Subject, subject) {
			return f, true
		}
	}
	return Finding{}, false
}

func TestHealthyInstallationPasses(t *testing.T) {
	cfg, _ := setup(t, time.Now().Add(30*24*time.Hour))
	fs := Run(context.Background(), cfg, Options{})
	if Failed(fs) {
		t.Fatalf("failures on a healthy setup: %+v", fs)
	}
	f, ok := find(fs, "class "+class)
	if !ok || f.Severity != OK || !strings.Contains(f.Detail, "seq 4") {
		t.Fatalf("class finding: %+v", f)
	}
}

func TestEachProblemFailsWithItsFix(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(t *testing.T, cfg *config.Config, dir string)
		subject string
		sev     Severity
		fix     string
	}{
		{"registry readable by others", func(t *testing.T, cfg *config.Config, _ string) {
			os.Chmod(cfg.Registry, 0o644)
		}, "registry", Fail, ""},
		{"untrusted upstream CA", func(t *testing.T, cfg *config.Config, dir string) {
			other, _ := setup(t, time.Now().Add(time.Hour))
			cfg.Upstream.CABundle = other.Upstream.CABundle
		}, "class " + class, Fail, "upstream.ca_bundle"},
		{"pin mismatch", func(t *testing.T, cfg *config.Config, _ string) {
			cfg.Upstream.Pins = []string{"sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
		}, "class " + class, Fail, "upstream.pins"},
		{"unknown vendor key", func(t *testing.T, cfg *config.Config, dir string) {
			pub, _, _ := manifest.GenerateKey(rand.Reader)
			f := filepath.Join(dir, "other.pub")
			manifest.SavePublicKey(f, pub)
			cfg.Upstream.VendorKeys = []string{f}
		}, "class " + class, Fail, "upstream.vendor_keys"},
		{"manifest signature does not match", func(t *testing.T, cfg *config.Config, dir string) {
			doc := filepath.Join(dir, "site", class, "manifest.json")
			b, _ := os.ReadFile(doc)
			os.WriteFile(doc, []byte(strings.Replace(string(b), `"1.2"`, `"1.3"`, 1)), 0o644)
		}, "class " + class, Fail, "do not serve it"},
		{"expired certificate in the CA bundle", func(t *testing.T, cfg *config.Config, dir string) {
			ca, _ := localca.New("old vendor CA", time.Hour)
			old, _ := ca.Issue(localca.Leaf{Hosts: []string{"old.example"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
			f, _ := os.OpenFile(cfg.Upstream.CABundle, os.O_APPEND|os.O_WRONLY, 0)
			pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: old.Certificate[0]})
			f.Close()
		}, "upstream.ca_bundle", Fail, "renewed certificate"},
		{"missing vendor key file", func(t *testing.T, cfg *config.Config, dir string) {
			cfg.Upstream.VendorKeys = []string{filepath.Join(dir, "absent.pub")}
		}, "vendor key", Fail, ""},
		{"manifest expires soon", func(t *testing.T, cfg *config.Config, dir string) {
			soon, _ := setup(t, time.Now().Add(48*time.Hour))
			*cfg = *soon
		}, "class " + class, Warn, "re-publish"},
		{"local CA root key readable by others", func(t *testing.T, cfg *config.Config, dir string) {
			cfg.TLS = config.TLS{Mode: gatewaytls.ModeLocalCA, Names: []string{"gw.plant.lan"}}
			m, err := gatewaytls.New(cfg.GatewayTLS(), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
			os.Chmod(filepath.Join(cfg.StateDir, gatewaytls.RootDir, gatewaytls.RootKeyFile), 0o640)
		}, "tls local CA", Fail, "chmod 600"},
		{"admin token readable by others", func(t *testing.T, cfg *config.Config, dir string) {
			f := filepath.Join(dir, "token")
			os.WriteFile(f, []byte("secret-token\n"), 0o644)
			cfg.Admin.Listen, cfg.Admin.TokenFile = "127.0.0.1:0", f
		}, "admin.token_file", Fail, "chmod 600"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, dir := setup(t, time.Now().Add(30*24*time.Hour))
			c.breakIt(t, cfg, dir)
			fs := Run(context.Background(), cfg, Options{})
			var got *Finding
			for i, f := range fs {
				if strings.HasPrefix(f.Subject, c.subject) && f.Severity == c.sev {
					got = &fs[i]
				}
			}
			if got == nil {
				t.Fatalf("no %s finding for %s: %+v", c.sev, c.subject, fs)
			}
			if !strings.Contains(got.Fix+" "+got.Detail, c.fix) {
				t.Fatalf("finding %+v does not mention %q", got, c.fix)
			}
			if (c.sev == Fail) != Failed(fs) {
				t.Fatalf("Failed() = %v", Failed(fs))
			}
		})
	}
}

func TestConfigProblemsAreFindings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("log: {format: xml}\n"), 0o600)
	cfg, fs := Config(p)
	if cfg != nil || !Failed(fs) || !strings.Contains(fs[0].Detail, "log.format") {
		t.Fatalf("%+v", fs)
	}
}
