package manifest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestGenerateKeyUsesTheGivenRandomness(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	pub1, priv1, err := GenerateKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	if want := ed25519.NewKeyFromSeed(seed); !priv1.Equal(want) || !pub1.Equal(want.Public()) {
		t.Error("GenerateKey did not derive the key from the reader's bytes")
	}
	if _, _, err := GenerateKey(bytes.NewReader(seed[:10])); err == nil {
		t.Error("GenerateKey succeeded with 10 bytes of randomness")
	}
}

func TestKeyLinesRoundTrip(t *testing.T) {
	key := testKey("vendor")
	line := MarshalPublicKey(pub(key))
	if !bytes.HasPrefix(line, []byte("fotagate-vendor-pub ")) || !bytes.HasSuffix(line, []byte("\n")) {
		t.Errorf("public key line %q", line)
	}
	gotPub, err := ParsePublicKey(line)
	if err != nil || !gotPub.Equal(pub(key)) {
		t.Errorf("ParsePublicKey = %x, %v", gotPub, err)
	}
	gotPriv, err := ParsePrivateKey(MarshalPrivateKey(key))
	if err != nil || !gotPriv.Equal(key) {
		t.Errorf("ParsePrivateKey: %v", err)
	}
	// A configuration value carries the line without its newline, perhaps indented.
	if _, err := ParsePublicKey([]byte("  " + strings.TrimSpace(string(line)) + "  ")); err != nil {
		t.Errorf("trimmed line: %v", err)
	}
}

func TestParseKeyRejects(t *testing.T) {
	key := testKey("vendor")
	pubLine := strings.TrimSpace(string(MarshalPublicKey(pub(key))))
	privLine := strings.TrimSpace(string(MarshalPrivateKey(key)))
	tests := []struct {
		name    string
		line    string
		private bool
	}{
		{"private line as public key", privLine, false},
		{"public line as private key", pubLine, true},
		{"bare base64 public key", strings.TrimPrefix(pubLine, "fotagate-vendor-pub "), false},
		{"truncated public key", pubLine[:len(pubLine)-4], false},
		{"public key too long", pubLine[:len(pubLine)-1] + "AAAA", false},
		{"not base64", "fotagate-vendor-pub !!!!", false},
		{"empty", "", true},
		{"two spaces after the type", strings.Replace(pubLine, " ", "  ", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.private {
				_, err = ParsePrivateKey([]byte(tt.line))
			} else {
				_, err = ParsePublicKey([]byte(tt.line))
			}
			if !errors.Is(err, ErrBadKey) {
				t.Errorf("error = %v, want ErrBadKey", err)
			}
		})
	}
}

func TestKeyFilesRoundTripAndAreNeverOverwritten(t *testing.T) {
	key := testKey("vendor")
	dir := t.TempDir()
	keyPath, pubPath := filepath.Join(dir, "vendor.key"), filepath.Join(dir, "vendor.pub")
	if err := SavePrivateKey(keyPath, key); err != nil {
		t.Fatal(err)
	}
	if err := SavePublicKey(pubPath, pub(key)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyPath); err != nil || runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	gotPriv, err := LoadPrivateKey(keyPath)
	if err != nil || !gotPriv.Equal(key) {
		t.Errorf("LoadPrivateKey: %v", err)
	}
	gotPub, err := LoadPublicKey(pubPath)
	if err != nil || !gotPub.Equal(pub(key)) {
		t.Errorf("LoadPublicKey: %v", err)
	}
	// A key file is never replaced.
	if err := SavePrivateKey(keyPath, testKey("other")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second SavePrivateKey = %v, want fs.ErrExist", err)
	}
	if err := SavePublicKey(pubPath, pub(testKey("other"))); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second SavePublicKey = %v, want fs.ErrExist", err)
	}
	if got, _ := LoadPrivateKey(keyPath); !got.Equal(key) {
		t.Error("refused SavePrivateKey changed the key file")
	}
}

func TestLoadPrivateKeyRejectsGroupOrOtherReadable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	tests := []struct {
		mode os.FileMode
		want error
	}{
		{0o600, nil},
		{0o400, nil},
		{0o644, ErrKeyPermissions},
		{0o640, ErrKeyPermissions},
		{0o604, ErrKeyPermissions},
		{0o660, ErrKeyPermissions},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vendor.key")
			if err := SavePrivateKey(path, testKey("vendor")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPrivateKey(path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadPrivateKey error = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("error %q does not tell the user to run chmod 600 %s", err, path)
			}
		})
	}
}

func TestLoadKeyRejectsWrongKind(t *testing.T) {
	key := testKey("vendor")
	dir := t.TempDir()
	keyPath, pubPath := filepath.Join(dir, "vendor.key"), filepath.Join(dir, "vendor.pub")
	if err := SavePrivateKey(keyPath, key); err != nil {
		t.Fatal(err)
	}
	if err := SavePublicKey(pubPath, pub(key)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pubPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(pubPath); !errors.Is(err, ErrBadKey) {
		t.Errorf("public key file as private key: %v, want ErrBadKey", err)
	}
	if _, err := LoadPublicKey(keyPath); !errors.Is(err, ErrBadKey) {
		t.Errorf("private key file as public key: %v, want ErrBadKey", err)
	}
}
