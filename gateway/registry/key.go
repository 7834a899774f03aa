package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/fotagate/fotagate/protocol"
	"go.uber.org/zap/zapcore"
)

// Key is a device's pre-shared key. Every way Go has to print or encode a value (fmt verbs,
// String, GoString, encoding/json and other text encoders, zap.Any and zap.Reflect) shows
// "[redacted]", so a key cannot reach a log by accident. Code that needs the bytes uses
// them deliberately: k[:], or [32]byte(k) for the protocol package.
type Key [protocol.KeySize]byte

const redacted = "[redacted]"

func (Key) String() string               { return redacted }
func (Key) GoString() string             { return redacted }
func (Key) Format(f fmt.State, _ rune)   { io.WriteString(f, redacted) }
func (Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Fingerprint is a short, non-secret name for a key, so people can check which key a device
// and the registry hold without seeing either: the first 8 bytes of SHA-256 over a
// domain-separation label and the key. Recovering a 256-bit random key from it is as hard as
// guessing the key.
func (k Key) Fingerprint() string {
	h := sha256.New()
	h.Write([]byte("fotagate key fingerprint v1\x00"))
	h.Write(k[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// MarshalLogObject lets zap.Any/zap.Object log a device without its key.
func (d Device) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", d.ID)
	enc.AddString("class", d.Class)
	enc.AddString("key_id", d.PSK.Fingerprint())
	if d.Note != "" {
		enc.AddString("note", d.Note)
	}
	return nil
}
