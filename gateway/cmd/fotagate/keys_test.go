package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fotagate/fotagate/gateway/registry"
)

// runKeys executes the fotagate command line in-process with stdout and stderr apart, so
// that --json output can be parsed.
func runKeys(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// mustKeys runs a command that must succeed and returns everything it printed.
func mustKeys(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := runKeys(t, args...)
	if err != nil {
		t.Fatalf("fotagate %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout + stderr
}

// newKeysDir returns a private directory and the registry path in it (not yet created).
func newKeysDir(t *testing.T) (dir, reg string) {
	dir = t.TempDir()
	return dir, filepath.Join(dir, "devices.json")
}

func loadDevice(t *testing.T, reg, id string) (registry.Device, bool) {
	t.Helper()
	r, err := registry.Load(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Lookup(id)
}

func readKeyFile(t *testing.T, path string) registry.Device {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := registry.ParseProvisionJSON(data)
	if err != nil {
		t.Fatalf("key file %s: %v", path, err)
	}
	return d
}

// keyForms are the ways a key could show up in output.
func keyForms(k registry.Key) []string {
	h := hex.EncodeToString(k[:])
	return []string{h, strings.ToUpper(h), h[:16], h[48:], base64.StdEncoding.EncodeToString(k[:])[:20]}
}

func assertNoKey(t *testing.T, what, out string, k registry.Key) {
	t.Helper()
	for _, form := range keyForms(k) {
		if strings.Contains(out, form) {
			t.Errorf("%s shows the key (as %q):\n%s", what, form, out)
		}
	}
}

func TestKeysAddThenListShowsDeviceButNeverItsKey(t *testing.T) {
	dir, reg := newKeysDir(t)
	keyFile := filepath.Join(dir, "dev-1.json")
	addOut := mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg,
		"--note", "hall, 2nd floor", "--key-file", keyFile)
	mustKeys(t, "keys", "add", "dev-2", "--class", "esp-other", "--registry", reg)
	d := readKeyFile(t, keyFile)
	fp := d.PSK.Fingerprint()

	listOut := mustKeys(t, "keys", "list", "--registry", reg)
	lines := strings.Split(strings.TrimSpace(listOut), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		strings.Join(strings.Fields(lines[1]), " ") != "dev-1 esp-relay "+fp+" hall, 2nd floor" ||
		!strings.HasPrefix(lines[2], "dev-2 ") {
		t.Errorf("list printed:\n%s\nwant a header, then dev-1 with key id %s and its note, then dev-2", listOut, fp)
	}

	jsonOut, _, err := runKeys(t, "keys", "list", "--registry", reg, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var listed []listedDevice
	if err := json.Unmarshal([]byte(jsonOut), &listed); err != nil {
		t.Fatalf("list --json printed %q: %v", jsonOut, err)
	}
	if len(listed) != 2 || listed[0] != (listedDevice{"dev-1", "esp-relay", fp, "hall, 2nd floor"}) || listed[1].ID != "dev-2" {
		t.Errorf("list --json = %+v", listed)
	}

	showOut := mustKeys(t, "keys", "show", "dev-1", "--registry", reg)
	for _, out := range []struct{ what, text string }{
		{"add", addOut}, {"list", listOut}, {"list --json", jsonOut}, {"show", showOut},
	} {
		assertNoKey(t, out.what, out.text, d.PSK)
		if !strings.Contains(out.text, fp) {
			t.Errorf("%s does not show the key id %s:\n%s", out.what, fp, out.text)
		}
	}
	if !strings.Contains(showOut, "NOT printed") || !strings.Contains(showOut, "--key-file FILE") ||
		!strings.Contains(showOut, "--header FILE") || !strings.Contains(showOut, "--json") {
		t.Errorf("show without export flags does not say how to get the key:\n%s", showOut)
	}
	if !strings.Contains(addOut, "Wrote key file "+keyFile) || strings.Contains(addOut, "NOT printed") {
		t.Errorf("add --key-file printed:\n%s", addOut)
	}
}

func TestKeysAddWithoutExportSaysKeyWasNotPrinted(t *testing.T) {
	_, reg := newKeysDir(t)
	out := mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg)
	d, ok := loadDevice(t, reg, "dev-1")
	if !ok {
		t.Fatal("device not registered")
	}
	assertNoKey(t, "add", out, d.PSK)
	for _, want := range []string{"dev-1", "esp-relay", d.PSK.Fingerprint(), "NOT printed",
		"fotagate keys show dev-1 --registry " + reg + " --key-file FILE", "--header FILE", "--json"} {
		if !strings.Contains(out, want) {
			t.Errorf("add output lacks %q:\n%s", want, out)
		}
	}
}

func TestKeysAddKeyFileIsPrivateAndHoldsTheRegistryKey(t *testing.T) {
	dir, reg := newKeysDir(t)
	keyFile := filepath.Join(dir, "dev-1.json")
	// A world-readable file in the way must come out 0600, not keep its mode.
	if err := os.WriteFile(keyFile, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg,
		"--key-file", keyFile, "--json")
	if err != nil {
		t.Fatalf("add: %v\n%s", err, stderr)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	want, ok := loadDevice(t, reg, "dev-1")
	if !ok {
		t.Fatal("device not registered")
	}
	if got := readKeyFile(t, keyFile); got != want || got.PSK != want.PSK {
		t.Errorf("key file holds %+v (key id %s), registry %+v (key id %s)",
			got, got.PSK.Fingerprint(), want, want.PSK.Fingerprint())
	}
	// --json puts exactly the provisioning record on stdout, the words for people on stderr.
	got, err := registry.ParseProvisionJSON([]byte(stdout))
	if err != nil || got.PSK != want.PSK || got.ID != "dev-1" || got.Class != "esp-relay" {
		t.Errorf("add --json printed %q: %v", stdout, err)
	}
	if !strings.Contains(stderr, want.PSK.Fingerprint()) {
		t.Errorf("stderr lacks the summary:\n%s", stderr)
	}
	assertNoKey(t, "stderr of add --json", stderr, want.PSK)
}

func TestKeysAddHeaderCompilesWithTheRegistryKey(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc not found; install it (apt-get install gcc): the header must be checked by a C compiler")
	}
	dir, reg := newKeysDir(t)
	inc := filepath.Join(dir, "include")
	if err := os.Mkdir(inc, 0o700); err != nil {
		t.Fatal(err)
	}
	// A directory gets fota_provision.h in it.
	out := mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg, "--header", inc)
	header := filepath.Join(inc, registry.HeaderName)
	fi, err := os.Stat(header)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("header %v, %v; want a file of mode 0600 (add printed:\n%s)", fi, err, out)
	}
	main := filepath.Join(dir, "main.c")
	src := `#include <stdio.h>
#include "fota_provision.h"
int main(void) {
	size_t i;
	printf("%s %s ", FOTA_DEVICE_ID, FOTA_DEVICE_CLASS);
	for (i = 0; i < FOTA_DEVICE_PSK_LEN; i++) printf("%02x", fota_device_psk[i]);
	printf("\n");
	return 0;
}
`
	if err := os.WriteFile(main, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prov")
	if b, err := exec.Command(gcc, "-std=c99", "-Wall", "-Werror", "-I", inc, "-o", bin, main).CombinedOutput(); err != nil {
		h, _ := os.ReadFile(header)
		t.Fatalf("gcc: %v\n%s\nheader:\n%s", err, b, h)
	}
	got, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := loadDevice(t, reg, "dev-1")
	if want := "dev-1 esp-relay " + hex.EncodeToString(d.PSK[:]) + "\n"; string(got) != want {
		t.Errorf("program built with the header printed %q, want %q", got, want)
	}
}

func TestKeysAddRefusesRegisteredDevice(t *testing.T) {
	dir, reg := newKeysDir(t)
	keyFile := filepath.Join(dir, "dev-1.json")
	mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg, "--key-file", keyFile)
	before, _ := os.ReadFile(reg)
	keyBefore, _ := os.ReadFile(keyFile)

	_, _, err := runKeys(t, "keys", "add", "dev-1", "--class", "other", "--registry", reg, "--key-file", keyFile)
	if !errors.Is(err, registry.ErrExists) {
		t.Fatalf("second add: error = %v, want registry.ErrExists", err)
	}
	if !strings.Contains(err.Error(), "fotagate keys rotate dev-1") || !strings.Contains(err.Error(), "fotagate keys show dev-1") {
		t.Errorf("error does not say what to do instead: %v", err)
	}
	if after, _ := os.ReadFile(reg); !bytes.Equal(before, after) {
		t.Error("refused add changed the registry")
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(keyBefore, after) {
		t.Error("refused add rewrote the key file")
	}
}

func TestKeysRotateReplacesKey(t *testing.T) {
	dir, reg := newKeysDir(t)
	oldFile, newFile := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.json")
	mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg, "--note", "n", "--key-file", oldFile)
	old := readKeyFile(t, oldFile)

	out := mustKeys(t, "keys", "rotate", "dev-1", "--registry", reg)
	cur, _ := loadDevice(t, reg, "dev-1")
	if cur.PSK == old.PSK || cur.PSK.Fingerprint() == old.PSK.Fingerprint() {
		t.Fatal("rotate kept the key")
	}
	if cur.Class != "esp-relay" || cur.Note != "n" {
		t.Errorf("rotate changed more than the key: %+v", cur)
	}
	if readKeyFile(t, oldFile).PSK == cur.PSK {
		t.Error("the key file from before the rotation still matches the registry")
	}
	if !strings.Contains(out, cur.PSK.Fingerprint()) || !strings.Contains(out, "was "+old.PSK.Fingerprint()) ||
		!strings.Contains(out, "NOT printed") {
		t.Errorf("rotate output does not name the new and old key ids and how to export:\n%s", out)
	}
	assertNoKey(t, "rotate", out, cur.PSK)

	mustKeys(t, "keys", "rotate", "dev-1", "--registry", reg, "--key-file", newFile)
	cur, _ = loadDevice(t, reg, "dev-1")
	if readKeyFile(t, newFile).PSK != cur.PSK {
		t.Error("rotate --key-file does not hold the registry's new key")
	}
}

func TestKeysRemoveThenShowFailsWithHint(t *testing.T) {
	_, reg := newKeysDir(t)
	mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg)
	mustKeys(t, "keys", "add", "dev-2", "--class", "esp-relay", "--registry", reg)
	out := mustKeys(t, "keys", "remove", "dev-1", "--registry", reg)
	if !strings.Contains(out, "Removed device dev-1") {
		t.Errorf("remove printed:\n%s", out)
	}
	if _, ok := loadDevice(t, reg, "dev-1"); ok {
		t.Fatal("removed device still registered")
	}
	if _, ok := loadDevice(t, reg, "dev-2"); !ok {
		t.Fatal("remove took another device with it")
	}
	want := "no device dev-1 in " + reg + ": fotagate keys list --registry " + reg + " shows the registered ones"
	for _, args := range [][]string{
		{"show", "dev-1"}, {"show", "dev-1", "--json"}, {"rotate", "dev-1"}, {"remove", "dev-1"},
	} {
		stdout, _, err := runKeys(t, append(append([]string{"keys"}, args...), "--registry", reg)...)
		if !errors.Is(err, registry.ErrNotFound) || err.Error() != want {
			t.Errorf("keys %s: error = %v, want %q", strings.Join(args, " "), err, want)
		}
		if stdout != "" {
			t.Errorf("keys %s printed %q", strings.Join(args, " "), stdout)
		}
	}
}

func TestKeysRefuseRegistryOthersCanRead(t *testing.T) {
	dir, reg := newKeysDir(t)
	mustKeys(t, "keys", "add", "dev-1", "--class", "esp-relay", "--registry", reg)
	if err := os.Chmod(reg, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(reg)
	keyFile := filepath.Join(dir, "k.json")
	for _, args := range [][]string{
		{"list"}, {"add", "dev-2", "--class", "c"}, {"rotate", "dev-1"},
		{"show", "dev-1", "--key-file", keyFile}, {"remove", "dev-1"},
	} {
		_, _, err := runKeys(t, append(append([]string{"keys"}, args...), "--registry", reg)...)
		if !errors.Is(err, registry.ErrInsecure) || !strings.Contains(err.Error(), "run: chmod 600 "+reg) {
			t.Errorf("keys %s on a 0644 registry: error = %v, want ErrInsecure with the chmod to run",
				strings.Join(args, " "), err)
		}
	}
	if after, _ := os.ReadFile(reg); !bytes.Equal(before, after) {
		t.Error("a command changed the 0644 registry")
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Error("show exported a key from a 0644 registry")
	}
}

func TestKeysUseTheRegistryTheGatewayConfigNamesUnlessFlagGiven(t *testing.T) {
	dir := t.TempDir()
	cfgReg, flagReg := filepath.Join(dir, "state", "devices.json"), filepath.Join(dir, "flag", "devices.json")
	cfg := filepath.Join(dir, "fotagate.yaml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "state")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustKeys(t, "keys", "add", "dev-cfg", "--class", "c", "--config", cfg)
	if _, ok := loadDevice(t, cfgReg, "dev-cfg"); !ok {
		t.Fatalf("add --config did not use the registry the config names (%s):\n%s", cfgReg, out)
	}
	if !strings.Contains(out, "--config") {
		t.Errorf("hints drop --config:\n%s", out)
	}
	mustKeys(t, "keys", "add", "dev-flag", "--class", "c", "--config", cfg, "--registry", flagReg)
	if _, ok := loadDevice(t, flagReg, "dev-flag"); !ok {
		t.Fatal("--registry did not override the configuration")
	}
	if _, ok := loadDevice(t, cfgReg, "dev-flag"); ok {
		t.Fatal("--registry given, but the device went to the configuration's registry")
	}
}

func TestKeysRefuseBadOutputBeforeChangingRegistry(t *testing.T) {
	dir, reg := newKeysDir(t)
	mustKeys(t, "keys", "add", "dev-1", "--class", "c", "--registry", reg)
	before, _ := os.ReadFile(reg)
	same := filepath.Join(dir, "same.out")
	tests := []struct {
		name    string
		args    []string
		wantMsg string
	}{
		{"key file over the registry", []string{"add", "dev-2", "--class", "c", "--key-file", reg}, "is the device registry"},
		{"header over the registry", []string{"rotate", "dev-1", "--header", reg}, "is the device registry"},
		{"key file in a missing directory", []string{"add", "dev-2", "--class", "c", "--key-file", filepath.Join(dir, "nope", "k.json")}, "does not exist: create it first"},
		{"key file is a directory", []string{"rotate", "dev-1", "--key-file", dir}, "is a directory"},
		{"key file and header the same", []string{"add", "dev-2", "--class", "c", "--key-file", same, "--header", same}, "give each its own file"},
		{"invalid device ID", []string{"add", "dev 2", "--class", "c"}, `DEVICE: device ID "dev 2": byte 3`},
		{"invalid class", []string{"add", "dev-2", "--class", "a/b"}, "--class: "},
		{"note with a newline", []string{"add", "dev-2", "--class", "c", "--note", "a\nb"}, "one line of printable text"},
		{"missing class", []string{"add", "dev-2"}, `"class" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runKeys(t, append(append([]string{"keys"}, tt.args...), "--registry", reg)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error = %v, want one saying %q", err, tt.wantMsg)
			}
			if stdout != "" {
				t.Errorf("printed %q", stdout)
			}
			if after, _ := os.ReadFile(reg); !bytes.Equal(before, after) {
				t.Error("the refused command changed the registry")
			}
		})
	}
	if _, err := os.Stat(same); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a refused command wrote an output file")
	}
}

func TestKeysListWithoutRegistryTellsHowToCreateOne(t *testing.T) {
	_, reg := newKeysDir(t)
	_, _, err := runKeys(t, "keys", "list", "--registry", reg)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "fotagate keys add DEVICE --registry "+reg+" --class CLASS creates it") {
		t.Errorf("list of a missing registry: error = %v", err)
	}
	if _, err := os.Stat(reg); !errors.Is(err, fs.ErrNotExist) {
		t.Error("list created a registry")
	}
	mustKeys(t, "keys", "add", "dev-1", "--class", "c", "--registry", reg)
	mustKeys(t, "keys", "remove", "dev-1", "--registry", reg)
	if out := mustKeys(t, "keys", "list", "--registry", reg); !strings.Contains(out, "No devices in "+reg) {
		t.Errorf("list of an empty registry printed %q", out)
	}
	if out := mustKeys(t, "keys", "list", "--registry", reg, "--json"); out != "[]\n" {
		t.Errorf("list --json of an empty registry printed %q, want []", out)
	}
}

func TestKeysShowExportsCurrentKey(t *testing.T) {
	dir, reg := newKeysDir(t)
	mustKeys(t, "keys", "add", "dev-1", "--class", "c", "--registry", reg)
	keyFile, header := filepath.Join(dir, "k.json"), filepath.Join(dir, "p.h")
	stdout, stderr, err := runKeys(t, "keys", "show", "dev-1", "--registry", reg, "--key-file", keyFile, "--header", header, "--json")
	if err != nil {
		t.Fatalf("show: %v\n%s", err, stderr)
	}
	d, _ := loadDevice(t, reg, "dev-1")
	if got, err := registry.ParseProvisionJSON([]byte(stdout)); err != nil || got.PSK != d.PSK {
		t.Errorf("show --json printed %q: %v", stdout, err)
	}
	if readKeyFile(t, keyFile).PSK != d.PSK {
		t.Error("show --key-file does not hold the registry key")
	}
	h, err := os.ReadFile(header)
	if err != nil || !bytes.Equal(h, registry.CHeader(d)) {
		t.Errorf("show --header wrote %q, %v", h, err)
	}
	for _, p := range []string{keyFile, header} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", p, fi, err)
		}
	}
}
