package manifest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// docContext starts every message a vendor signs for a manifest document (FORMAT.md 6.1). The
// image statement starts with "fotagate image v1\x00" (PROTOCOL.md 7.2); neither prefix is a
// prefix of the other, so one vendor key can sign both and no signature of one kind can ever
// verify as the other.
const docContext = "fotagate manifest v1\x00"

// AlgEd25519 is the only "alg" of a signature envelope.
const AlgEd25519 = "ed25519"

// KeyIDSize is the length of a key ID: the first 8 bytes of SHA-256 of the public key.
const KeyIDSize = 8

// KeyID names a vendor public key in signature envelopes and logs. It only selects a key; the
// signature, not the ID, is what is trusted, so a collision costs one failed verification.
type KeyID [KeyIDSize]byte

// KeyIDOf returns the ID of a public key.
func KeyIDOf(pub ed25519.PublicKey) KeyID {
	sum := sha256.Sum256(pub)
	return KeyID(sum[:KeyIDSize])
}

// String is the ID as 16 lower-case hex digits, as in the envelope.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// envelope is a decoded manifest.json.sig.
type envelope struct {
	KeyID KeyID
	Sig   [ed25519.SignatureSize]byte
}

// signedMessage is what the document signature covers: docContext followed by the document's
// bytes exactly as served (FORMAT.md 6.1).
func signedMessage(doc []byte) []byte {
	msg := make([]byte, 0, len(docContext)+len(doc))
	msg = append(msg, docContext...)
	return append(msg, doc...)
}

// signDoc returns the signature envelope for doc.
func signDoc(doc []byte, key ed25519.PrivateKey) []byte {
	id := KeyIDOf(key.Public().(ed25519.PublicKey))
	sig := ed25519.Sign(key, signedMessage(doc))
	// Encoded by hand to keep the field order of FORMAT.md 6.2; every value is hex or base64,
	// so nothing needs escaping.
	return fmt.Appendf(nil, "{\"key_id\": %q, \"alg\": %q, \"sig\": %q}\n", id, AlgEd25519, base64.StdEncoding.EncodeToString(sig))
}

// parseEnvelope decodes manifest.json.sig with the same strict rules as the document.
func parseEnvelope(b []byte) (*envelope, error) {
	var e envelope
	seen := make(map[string]bool, 3)
	err := decodeObject(b, func(key string, val json.Token) error {
		s, err := stringField(key, val)
		if err != nil {
			return err
		}
		seen[key] = true
		switch key {
		case "key_id":
			return decodeHex(key, s, e.KeyID[:])
		case "alg":
			if s != AlgEd25519 {
				return fmt.Errorf("%w: signature \"alg\" is %q; format %d signs with %q only", ErrMalformed, s, FormatVersion, AlgEd25519)
			}
			return nil
		case "sig":
			return decodeBase64(key, s, e.Sig[:])
		}
		return fmt.Errorf("%w: unknown signature field %q; the envelope has only \"key_id\", \"alg\" and \"sig\"", ErrMalformed, key)
	})
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"key_id", "alg", "sig"} {
		if !seen[f] {
			return nil, fmt.Errorf("%w: signature field %q is missing", ErrMalformed, f)
		}
	}
	return &e, nil
}
