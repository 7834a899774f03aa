package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/certs/gatewaytls"
)

func TestCAExportPrintsTheRootOnlyInLocalCAMode(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fotagate.yaml")
	body := "state_dir: " + dir + "\nadmin: {listen: \"\"}\n"
	os.WriteFile(cfg, []byte(body), 0o600)
	if out, err := run(t, "ca", "export", "--config", cfg); err == nil || !strings.Contains(err.Error(), "local_ca") {
		t.Fatalf("export without local_ca: %v\n%s", err, out)
	}
	os.WriteFile(cfg, []byte(body+"tls: {mode: local_ca, names: [gw.plant.lan]}\n"), 0o600)
	if out, err := run(t, "ca", "export", "--config", cfg); err == nil {
		t.Fatalf("export before any root exists succeeded:\n%s", out)
	}
	// The gateway makes its root on first start; New does that without the network.
	m, err := gatewaytls.New(gatewaytls.Config{Mode: gatewaytls.ModeLocalCA, Names: []string{"gw.plant.lan"}, StateDir: dir}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	out, err := run(t, "ca", "export", "--config", cfg)
	if err != nil || !strings.Contains(out, "BEGIN CERTIFICATE") || !strings.Contains(out, "SHA-256 fingerprint") {
		t.Fatalf("export: %v\n%s", err, out)
	}
}
