package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRunRefusesPositionalArguments(t *testing.T) {
	err := run(context.Background(), []string{"1.2.0"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "unexpected argument") {
		t.Fatalf("run: %v, want an error about the argument", err)
	}
}

func TestRunRefusesBadVersionBeforeBuilding(t *testing.T) {
	start := time.Now()
	err := run(context.Background(), []string{"--version", "latest", "--out", t.TempDir()}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("run: %v, want an error naming the version", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: the version must be checked before compiling", d)
	}
}

func TestRunPackagesTheGivenBinary(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatalf("dpkg-deb not found (%v): run `make deps`", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fotagate")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dist")
	var stdout bytes.Buffer
	args := []string{"--version", "2.0.0", "--arch", "arm64", "--binary", bin, "--out", out, "--maintainer", "Ops <ops@example.org>"}
	if err := run(context.Background(), args, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(out, "fotagate_2.0.0_arm64.deb")
	if got := strings.TrimSpace(stdout.String()); got != deb {
		t.Fatalf("printed %q, want the package path %s", got, deb)
	}
	fields, err := exec.Command("dpkg-deb", "--field", deb, "Version", "Architecture", "Maintainer").CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, fields)
	}
	want := "Version: 2.0.0\nArchitecture: arm64\nMaintainer: Ops <ops@example.org>\n"
	if string(fields) != want {
		t.Fatalf("control fields:\n%s\nwant:\n%s", fields, want)
	}
	// The compression deploy/nfpm.yaml leaves at nfpm's default: gzip, which every dpkg
	// reads (zstd needs dpkg 1.21.18, Debian 12). The deploy/debpkg tests pack uncompressed.
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if got := arMembers(t, b); !slices.Equal(got, []string{"debian-binary", "control.tar.gz", "data.tar.gz"}) {
		t.Fatalf("package members %q, want debian-binary, control.tar.gz, data.tar.gz", got)
	}
}

func TestSourceDate(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if got := sourceDate("."); !got.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("with SOURCE_DATE_EPOCH: %v", got)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if _, err := exec.LookPath("git"); err == nil {
		if got := sourceDate("../../.."); got.IsZero() || got.After(time.Now()) {
			t.Fatalf("from git: %v, want the commit time", got)
		}
	}
	if got := sourceDate(t.TempDir()); !got.IsZero() {
		t.Fatalf("outside a repository: %v, want zero (now)", got)
	}
}

// arMembers lists the member names of an ar archive, the container format of a .deb.
func arMembers(t *testing.T, b []byte) []string {
	t.Helper()
	const magic, header = "!<arch>\n", 60
	if !bytes.HasPrefix(b, []byte(magic)) {
		t.Fatal("not an ar archive")
	}
	var names []string
	for off := len(magic); off+header <= len(b); {
		h := b[off : off+header]
		size, err := strconv.Atoi(strings.TrimSpace(string(h[48:58])))
		if err != nil {
			t.Fatalf("ar header at %d: %v", off, err)
		}
		names = append(names, strings.TrimRight(strings.TrimSpace(string(h[:16])), "/"))
		off += header + size + size%2
	}
	return names
}
