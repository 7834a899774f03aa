package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/gateway/manifest"
)

// run executes the fotagate command line in-process and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// keygen runs `fotagate keygen` in dir and returns the key base name.
func keygen(t *testing.T, dir string) string {
	t.Helper()
	base := filepath.Join(dir, "vendor")
	if out, err := run(t, "keygen", "--out", base); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	return base
}

func writeFirmware(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	image := bytes.Repeat([]byte{0xe9, 0x03, 0x02, 0x20}, 1000) // ESP8266 image magic, repeated
	path := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, image
}

// publishOutput is the --json output of fotagate publish.
type publishOutput struct {
	Class     string    `json:"class"`
	Version   string    `json:"version"`
	Seq       uint32    `json:"seq"`
	MinSeq    uint32    `json:"min_seq"`
	Size      uint32    `json:"size"`
	SHA256    string    `json:"sha256"`
	URL       string    `json:"url"`
	Expires   time.Time `json:"expires"`
	KeyID     string    `json:"key_id"`
	Manifest  string    `json:"manifest"`
	Signature string    `json:"signature"`
	Image     string    `json:"image"`
}

func TestKeygenThenPublishProducesVerifiableRelease(t *testing.T) {
	dir := t.TempDir()
	base := keygen(t, dir)
	fw, image := writeFirmware(t, dir)
	site := filepath.Join(dir, "site")

	out, err := run(t, "publish", "--key", base+".key", "--class", "esp-relay", "--seq", "7",
		"--version", "0.7.0", "--min-seq", "3", "--image", fw, "--expires", "48h", "--out", site, "--json")
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	var got publishOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("publish --json printed %q: %v", out, err)
	}

	pub, err := manifest.LoadPublicKey(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	v := &manifest.Verifier{Keys: []ed25519.PublicKey{pub}}
	doc, err := os.ReadFile(filepath.Join(site, "esp-relay", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(site, "esp-relay", "manifest.json.sig"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.Verify(doc, sig, "esp-relay")
	if err != nil {
		t.Fatalf("Verify of the published release: %v", err)
	}
	if m.Seq != 7 || m.MinSeq != 3 || m.Version != "0.7.0" || m.Size != uint32(len(image)) {
		t.Errorf("manifest = %+v", m)
	}
	if left := time.Until(m.Expires); left < 47*time.Hour || left > 48*time.Hour {
		t.Errorf("expires in %v, want 48h", left)
	}
	copied, err := os.ReadFile(filepath.Join(site, "esp-relay", m.ImageName()))
	if err != nil {
		t.Fatalf("content-addressed image: %v", err)
	}
	if err := m.VerifyImage(bytes.NewReader(copied)); err != nil {
		t.Errorf("copied image: %v", err)
	}
	if got.Seq != m.Seq || got.KeyID != m.KeyID.String() || got.URL != m.URL || got.Image != filepath.Join(site, "esp-relay", m.ImageName()) ||
		got.Manifest != filepath.Join(site, "esp-relay", "manifest.json") || !got.Expires.Equal(m.Expires) {
		t.Errorf("--json output %+v does not describe %+v", got, m)
	}
}

func TestPublishPrintsSummaryForPeople(t *testing.T) {
	dir := t.TempDir()
	base := keygen(t, dir)
	fw, _ := writeFirmware(t, dir)
	out, err := run(t, "publish", "--key", base+".key", "--class", "esp-relay", "--seq", "7",
		"--version", "0.7.0", "--image", fw, "--out", filepath.Join(dir, "site"))
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	for _, want := range []string{"Published esp-relay seq 7 (version 0.7.0)", "manifest.json.sig", "Signed by key "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPublishWithExternalURLDoesNotCopyImage(t *testing.T) {
	dir := t.TempDir()
	base := keygen(t, dir)
	fw, _ := writeFirmware(t, dir)
	site := filepath.Join(dir, "site")
	out, err := run(t, "publish", "--key", base+".key", "--class", "esp-relay", "--seq", "7", "--version", "0.7.0",
		"--image", fw, "--url", "https://cdn.example.net/fw-0.7.0.bin", "--out", site, "--json")
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	var got publishOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Image != "" || got.URL != "https://cdn.example.net/fw-0.7.0.bin" {
		t.Errorf("image %q, url %q; want no copy and the given URL", got.Image, got.URL)
	}
	entries, _ := os.ReadDir(filepath.Join(site, "esp-relay"))
	if len(entries) != 2 {
		t.Errorf("class directory holds %d files, want manifest.json and its signature", len(entries))
	}
}

func TestKeygenWritesPrivateKeyOwnerOnlyAndNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	base := keygen(t, dir)
	fi, err := os.Stat(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("vendor.key mode = %v, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(base + ".key")
	if _, err := run(t, "keygen", "--out", base); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second keygen: error = %v, want fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(base + ".key"); !bytes.Equal(before, after) {
		t.Error("second keygen changed vendor.key")
	}
}

func TestKeygenJSONNamesFilesAndKeyID(t *testing.T) {
	base := filepath.Join(t.TempDir(), "vendor")
	out, err := run(t, "keygen", "--out", base, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		PrivateKey string `json:"private_key"`
		PublicKey  string `json:"public_key"`
		KeyID      string `json:"key_id"`
		Public     string `json:"public"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("keygen --json printed %q: %v", out, err)
	}
	pub, err := manifest.LoadPublicKey(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if got.PrivateKey != base+".key" || got.PublicKey != base+".pub" || got.KeyID != manifest.KeyIDOf(pub).String() ||
		got.Public+"\n" != string(manifest.MarshalPublicKey(pub)) {
		t.Errorf("keygen --json = %+v", got)
	}
}

func TestPublishRefuses(t *testing.T) {
	dir := t.TempDir()
	base := keygen(t, dir)
	fw, _ := writeFirmware(t, dir)
	readable := filepath.Join(dir, "readable.key")
	key, _ := os.ReadFile(base + ".key")
	if err := os.WriteFile(readable, key, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readable, 0o644); err != nil { // in case the umask removed bits
		t.Fatal(err)
	}
	site := filepath.Join(dir, "site")
	common := []string{"publish", "--class", "esp-relay", "--version", "1", "--image", fw, "--out", site}
	tests := []struct {
		name    string
		args    []string
		wantErr error
		wantMsg string
	}{
		{"private key readable by others", []string{"--key", readable, "--seq", "1"}, manifest.ErrKeyPermissions, "chmod 600 " + readable},
		{"public key file (0644) given as private key", []string{"--key", base + ".pub", "--seq", "1"}, manifest.ErrKeyPermissions, "chmod 600"},
		{"missing --seq", []string{"--key", base + ".key"}, nil, `"seq" not set`},
		{"http image URL", []string{"--key", base + ".key", "--seq", "1", "--url", "http://cdn.example.net/fw.bin"}, manifest.ErrInsecureURL, "https"},
		{"expiry in the past", []string{"--key", base + ".key", "--seq", "1", "--expires", "2001-01-01T00:00:00Z"}, nil, "must be in the future"},
		{"negative expiry", []string{"--key", base + ".key", "--seq", "1", "--expires", "-1h"}, nil, "must be in the future"},
		{"unreadable expiry", []string{"--key", base + ".key", "--seq", "1", "--expires", "next week"}, nil, "give a duration like 720h"},
		{"seq over uint32", []string{"--key", base + ".key", "--seq", "4294967296"}, nil, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, append(common, tt.args...)...)
			if err == nil {
				t.Fatalf("publish succeeded:\n%s", out)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			if _, err := os.Stat(filepath.Join(site, "esp-relay", "manifest.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Error("a refused publish wrote manifest.json")
			}
		})
	}
}
