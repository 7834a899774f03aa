package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"runtime"
)

// Key file formats (FORMAT.md 8): one line, a type word, a space, the key in padded standard
// base64, a newline. The type word makes a public key pasted where a private one belongs (or
// the reverse) fail with a clear error instead of a confusing signature failure.
const (
	pubKeyPrefix  = "fotagate-vendor-pub "
	privKeyPrefix = "fotagate-vendor-key "
	// maxKeyFile bounds how much of a key file is read.
	maxKeyFile = 1 << 10
)

// GenerateKey creates a vendor key pair from rand (crypto/rand.Reader in production; nil
// also means crypto/rand).
func GenerateKey(rand io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand)
}

// MarshalPublicKey encodes pub in the public key file format, "fotagate-vendor-pub <base64>\n".
// The same line, without the newline, is how a gateway configuration lists a vendor key.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	return fmt.Appendf(nil, "%s%s\n", pubKeyPrefix, base64.StdEncoding.EncodeToString(pub))
}

// ParsePublicKey decodes a public key line; surrounding white space is ignored.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	raw, err := parseKeyLine(b, pubKeyPrefix, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}

// MarshalPrivateKey encodes the key's 32-byte seed, "fotagate-vendor-key <base64>\n".
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	return fmt.Appendf(nil, "%s%s\n", privKeyPrefix, base64.StdEncoding.EncodeToString(priv.Seed()))
}

// ParsePrivateKey decodes a private key line; surrounding white space is ignored.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	seed, err := parseKeyLine(b, privKeyPrefix, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func parseKeyLine(b []byte, prefix string, size int) ([]byte, error) {
	b = bytes.TrimSpace(b)
	rest, ok := bytes.CutPrefix(b, []byte(prefix))
	if !ok {
		want := "public"
		if prefix == privKeyPrefix {
			want = "private"
		}
		return nil, fmt.Errorf("%w: a %s key line starts with %q", ErrBadKey, want, prefix)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(string(rest))
	if err != nil || len(raw) != size {
		return nil, fmt.Errorf("%w: after %q must come %d bytes in padded standard base64", ErrBadKey, prefix, size)
	}
	return raw, nil
}

// SavePrivateKey writes priv to a new file readable only by its owner (0600). It never
// replaces an existing file: a vendor key that is overwritten is gone for good.
func SavePrivateKey(path string, priv ed25519.PrivateKey) error {
	return writeNew(path, 0o600, MarshalPrivateKey(priv))
}

// SavePublicKey writes pub to a new file (0644).
func SavePublicKey(path string, pub ed25519.PublicKey) error {
	return writeNew(path, 0o644, MarshalPublicKey(pub))
}

func writeNew(path string, perm os.FileMode, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("refusing to overwrite %s; move it away first (a replaced vendor key cannot be recovered): %w", path, err)
		}
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// LoadPrivateKey reads a private key file. It refuses a file that group or others may read,
// as ssh does, because a leaked vendor key lets anyone sign firmware for every device.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is that of the bytes read.
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// Windows has no Unix mode bits; its ACLs are out of scope here.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, err
	}
	key, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}
