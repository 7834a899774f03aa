package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fotagate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValidWithAnAdminToken(t *testing.T) {
	c := Default()
	c.Admin.TokenFile = "/etc/fotagate/admin.token"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFileThenFlagsOverride(t *testing.T) {
	p := write(t, `
gateway_id: gw-plant
state_dir: /srv/fota
admin:
  allow_anonymous: true
devices:
  listen: "127.0.0.1:9000"
  idle_timeout: 45s
upstream:
  vendor_keys: [/etc/fotagate/vendor.pub]
classes:
  - name: esp8266-4m
    manifest: https://firmware.example/esp8266-4m/manifest.json
`)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:9100", "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.GatewayID != "gw-plant" || c.Devices.Listen != "127.0.0.1:9100" || c.Log.Format != "json" {
		t.Fatalf("layering wrong: %+v", c)
	}
	if c.Devices.IdleTimeout != 45*time.Second || c.Devices.HandshakeTimeout != 10*time.Second {
		t.Fatalf("durations: %v %v", c.Devices.IdleTimeout, c.Devices.HandshakeTimeout)
	}
	if c.Registry != "/srv/fota/devices.json" || c.Cache.Dir != "/srv/fota/cache" {
		t.Fatalf("derived paths: %q %q", c.Registry, c.Cache.Dir)
	}
	if len(c.Classes) != 1 || c.Classes[0].Name != "esp8266-4m" {
		t.Fatalf("classes: %+v", c.Classes)
	}
}

func TestValidationNamesEveryBadField(t *testing.T) {
	p := write(t, `
gateway_id: "bad id!"
log: {format: xml}
devices: {listen: "7683", max_payload: 10}
upstream: {transport: h4, client_cert: c.pem}
cache: {memory_bytes: -1}
classes:
  - name: esp8266-4m
    manifest: http://firmware.example/m.json
`)
	_, err := Load(p, nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, field := range []string{"gateway_id", "log.format", "devices.listen", "devices.max_payload",
		"upstream.transport", "upstream.client_cert/client_key", "classes[0].manifest", "upstream.vendor_keys", "admin.token_file",
		"cache.memory_bytes"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

func TestUnknownFileIsAnError(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestAdminBeyondLoopbackNeedsTLS(t *testing.T) {
	c := Default()
	c.Admin.AllowAnonymous = true
	c.Admin.Listen = "0.0.0.0:7680"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "admin.listen:") {
		t.Fatalf("plain admin on all interfaces accepted: %v", err)
	}
	c.TLS = TLS{Mode: "local_ca", Names: []string{"gw.plant.lan", "192.0.2.10"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("with local_ca TLS: %v", err)
	}
	c.TLS = TLS{Mode: "acme"} // no directory, no names
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tls:") {
		t.Fatalf("incomplete acme accepted: %v", err)
	}
}
