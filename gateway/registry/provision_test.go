package registry

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestProvisionJSONRoundTrips(t *testing.T) {
	r, _ := newRegistry(t)
	d := mustAdd(t, r, "dev-1", "esp8266-a", 3)
	b := ProvisionJSON(d)
	if !strings.Contains(string(b), `"device_id": "dev-1"`) || !strings.Contains(string(b), hex.EncodeToString(d.PSK[:])) {
		t.Fatalf("provisioning JSON lacks the ID or the key:\n%s", b)
	}
	got, err := ParseProvisionJSON(b)
	if err != nil || got.ID != d.ID || got.Class != d.Class || got.PSK != d.PSK {
		t.Fatalf("ParseProvisionJSON = %v, %v", got, err)
	}
	if _, err := ParseProvisionJSON([]byte(`{"device_id":"dev-1","class":"c","psk":"00"}`)); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestWriteKeyFileIsPrivate(t *testing.T) {
	r, _ := newRegistry(t)
	d := mustAdd(t, r, "dev-1", "c", 3)
	path := filepath.Join(t.TempDir(), "dev-1.key.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, d); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600 even when replacing a 0644 file", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if got, err := ParseProvisionJSON(b); err != nil || got.PSK != d.PSK {
		t.Fatalf("key file does not read back: %v", err)
	}
}

// TestCHeaderCompilesAndCarriesTheKey builds the header into a C program with the flags the
// device library uses and checks what the program sees. A second translation unit includes
// the header without touching the key, as most of a firmware's files would: that must not
// warn either.
func TestCHeaderCompilesAndCarriesTheKey(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc not found; install it (apt-get install gcc): the header must be checked by a C compiler")
	}
	r, _ := newRegistry(t)
	d := mustAdd(t, r, "dev_1.x-Y", "esp8266-a", 4)
	dir := t.TempDir()
	header := CHeader(d)
	if !strings.Contains(string(header), "SECRET") {
		t.Fatal("header does not warn that it holds a secret")
	}
	files := map[string]string{
		HeaderName: string(header),
		"main.c": `#include <stdio.h>
#include "fota_provision.h"
int other(void);
int main(void) {
	size_t i;
	printf("%s %s %d ", FOTA_DEVICE_ID, FOTA_DEVICE_CLASS, FOTA_DEVICE_PSK_LEN);
	for (i = 0; i < sizeof fota_device_psk; i++) printf("%02x", fota_device_psk[i]);
	printf(" %d\n", other());
	return 0;
}
`,
		"other.c": `#include "fota_provision.h"
#include "fota_provision.h" /* the include guard must hold */
int other(void) { return (int)sizeof(FOTA_DEVICE_ID) - 1; }
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "prov")
	cmd := exec.Command(gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", bin, "main.c", "other.c")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s\nheader:\n%s", err, out, header)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "dev_1.x-Y esp8266-a 32 " + hex.EncodeToString(d.PSK[:]) + " 9\n"
	if !bytes.Equal(out, []byte(want)) {
		t.Fatalf("program printed %q, want %q", out, want)
	}
}

func TestCHeaderRefusesUncheckedDevice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("CHeader rendered an ID that would break out of its C string")
		}
	}()
	CHeader(Device{ID: `x" /*`, Class: "c"})
}
