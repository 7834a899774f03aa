package manifest

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// Verifier accepts a manifest only if a configured vendor key signed it and every check of
// FORMAT.md 7 passes. The zero value has no keys and refuses every signed manifest with ErrUnknownKey.
// A Verifier is safe for concurrent use as long as its fields are not changed.
type Verifier struct {
	// Keys are the vendor public keys this gateway trusts. Any of them may sign; the envelope's
	// key ID picks which. To rotate, configure the new key beside the old one, let the vendor
	// switch, then remove the old key.
	Keys []ed25519.PublicKey
	// Now returns the current time for the expiry check; nil means time.Now.
	Now func() time.Time
}

// Verify checks doc (manifest.json) and sig (manifest.json.sig, nil or empty when the server
// has none) as fetched for device class class, and returns the manifest only if all checks
// pass. Every refusal wraps one of the package's sentinel errors.
//
// The signature is checked before the document is parsed, so the JSON parser only ever sees
// bytes a configured vendor key signed.
func (v *Verifier) Verify(doc, sig []byte, class string) (*Manifest, error) {
	m, err := v.verify(doc, sig, class)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", class, err)
	}
	return m, nil
}

func (v *Verifier) verify(doc, sig []byte, class string) (*Manifest, error) {
	if err := protocol.CheckClass(class); err != nil {
		return nil, fmt.Errorf("%w: requested class: %v", ErrWrongClass, err)
	}
	if len(doc) > MaxDocSize {
		return nil, fmt.Errorf("%w: %s is %d bytes or more, limit %d; the URL probably does not point at a fotagate manifest",
			ErrTooLarge, DocName, len(doc), MaxDocSize)
	}
	if len(sig) > MaxSigSize {
		return nil, fmt.Errorf("%w: %s is %d bytes or more, limit %d", ErrTooLarge, SigName, len(sig), MaxSigSize)
	}
	if len(bytes.TrimSpace(sig)) == 0 {
		return nil, fmt.Errorf("%w: %s is missing or empty; the vendor must publish it beside %s (fotagate publish writes both)",
			ErrUnsigned, SigName, DocName)
	}
	env, err := parseEnvelope(sig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SigName, err)
	}
	pub, err := v.verifyDoc(doc, env)
	if err != nil {
		return nil, err
	}
	m, err := parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%s (validly signed by key %s, so the vendor's tooling wrote it): %w", DocName, env.KeyID, err)
	}
	if m.Class != class {
		return nil, fmt.Errorf("%w: the document is for class %q; check the manifest URL configured for class %q",
			ErrWrongClass, m.Class, class)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if t := now(); !t.Before(m.Expires) {
		return nil, fmt.Errorf("%w: seq %d expired at %s (now %s); the vendor must republish it, or this gateway's clock is wrong",
			ErrExpired, m.Seq, m.Expires.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339))
	}
	// Devices that check vendor signatures will verify ImageSig with the same key; a manifest
	// whose ImageSig is bad would be refused by every one of them, so stop it here.
	st := m.Statement()
	if !st.Verify(pub, m.ImageSig[:]) {
		return nil, fmt.Errorf("%w: seq %d: the document is signed by key %s but its image_sig does not verify under that key for this class, seq, size and sha256; the vendor must re-sign the release",
			ErrBadImageSignature, m.Seq, env.KeyID)
	}
	m.KeyID = env.KeyID
	return m, nil
}

// verifyDoc returns the configured key that signed doc. Several configured keys may share an
// ID (a configuration listing one key twice, or a collision); each is tried.
func (v *Verifier) verifyDoc(doc []byte, env *envelope) (ed25519.PublicKey, error) {
	known := false
	msg := signedMessage(doc)
	for i, pub := range v.Keys {
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: configured vendor key %d is %d bytes, want %d", ErrBadKey, i, len(pub), ed25519.PublicKeySize)
		}
		if KeyIDOf(pub) != env.KeyID {
			continue
		}
		known = true
		if ed25519.Verify(pub, msg, env.Sig[:]) {
			return pub, nil
		}
	}
	if !known {
		return nil, fmt.Errorf("%w: signed by key %s, which is not among the %d configured vendor keys; add the vendor's public key (its .pub file) to the gateway configuration",
			ErrUnknownKey, env.KeyID, len(v.Keys))
	}
	return nil, fmt.Errorf("%w: the signature by key %s does not match %s; the files were altered, or %s and %s come from different releases (retry after the upload completes)",
		ErrBadSignature, env.KeyID, DocName, DocName, SigName)
}
