package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFailsWithTheFieldAndFixAndExitStatus(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "devices.json")
	if out, err := run(t, "keys", "add", "dev-1", "--class", "esp8266-4m", "--registry", reg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	os.Chmod(reg, 0o644) // readable by others: a failure
	cfg := filepath.Join(dir, "fotagate.yaml")
	os.WriteFile(cfg, []byte("state_dir: "+dir+"\nregistry: "+reg+"\nadmin: {listen: \"\"}\ndevices: {listen: \"127.0.0.1:0\"}\n"), 0o600)
	out, err := run(t, "check", "--config", cfg, "--offline")
	if !errors.Is(err, errCheckFailed) {
		t.Fatalf("exit error %v\n%s", err, out)
	}
	if !strings.Contains(out, "fail") || !strings.Contains(out, "chmod 600") {
		t.Fatalf("output lacks the failure and its fix:\n%s", out)
	}
	os.Chmod(reg, 0o600)
	if out, err := run(t, "check", "--config", cfg, "--offline", "--json"); err != nil || !strings.Contains(out, `"severity": "ok"`) {
		t.Fatalf("after the fix: %v\n%s", err, out)
	}
}
