package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestVerifyAcceptsPublishedManifest(t *testing.T) {
	key := testKey("vendor")
	opts := testOptions()
	doc, sig := mustPublish(t, opts, key)

	m, err := testVerifier(key).Verify(doc, sig, opts.Class)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Manifest{
		Class:   opts.Class,
		Version: opts.Version,
		Seq:     opts.Seq,
		MinSeq:  opts.MinSeq,
		Size:    uint32(len(testImage)),
		SHA256:  sha256.Sum256(testImage),
		URL:     fmt.Sprintf("%x.bin", sha256.Sum256(testImage)),
		Expires: opts.Expires,
		KeyID:   KeyIDOf(pub(key)),
	}
	want.ImageSig = m.ImageSig // checked below against the key
	if *m != want {
		t.Errorf("Verify returned\n%+v\nwant\n%+v", *m, want)
	}
	st := m.Statement()
	if !st.Verify(pub(key), m.ImageSig[:]) {
		t.Error("ImageSig does not verify as the device would check it")
	}
	if err := m.VerifyImage(bytes.NewReader(testImage)); err != nil {
		t.Errorf("VerifyImage of the published image: %v", err)
	}
}

// resign replaces the signature with a valid one by key over the (edited) document, so the
// check under test is the one after the document signature.
func resign(key ed25519.PrivateKey) func(doc []byte) []byte {
	return func(doc []byte) []byte { return signDoc(doc, key) }
}

func TestVerifyRejects(t *testing.T) {
	key := testKey("vendor")
	other := testKey("other vendor")
	opts := testOptions()
	doc, sig := mustPublish(t, opts, key)
	otherDoc, otherSig := mustPublish(t, opts, other)
	seq41 := opts
	seq41.Seq = 41
	doc41, _ := mustPublish(t, seq41, key)
	m, err := testVerifier(key).Verify(doc, sig, opts.Class)
	if err != nil {
		t.Fatal(err)
	}
	imageSigB64 := base64.StdEncoding.EncodeToString(m.ImageSig[:])
	// envelope builds a signature file by hand.
	envelope := func(id KeyID, alg string, s []byte) []byte {
		return fmt.Appendf(nil, `{"key_id":"%s","alg":"%s","sig":"%s"}`, id, alg, base64.StdEncoding.EncodeToString(s))
	}

	tests := []struct {
		name     string
		doc      func() ([]byte, []byte)
		class    string
		verifier *Verifier
		want     error
	}{
		{name: "missing signature", want: ErrUnsigned,
			doc: func() ([]byte, []byte) { return doc, nil }},
		{name: "empty signature file", want: ErrUnsigned,
			doc: func() ([]byte, []byte) { return doc, []byte(" \n") }},
		{name: "flipped bit in the signature", want: ErrBadSignature,
			doc: func() ([]byte, []byte) {
				s := bytes.Clone(sig)
				i := bytes.Index(s, []byte(`"sig": "`)) + len(`"sig": "`) + 3
				s[i] ^= 0x01
				return doc, s
			}},
		{name: "signature by an unconfigured key", want: ErrUnknownKey,
			doc: func() ([]byte, []byte) { return otherDoc, otherSig }},
		{name: "unconfigured key claiming a configured key ID", want: ErrBadSignature,
			doc: func() ([]byte, []byte) {
				return doc, envelope(KeyIDOf(pub(key)), AlgEd25519, ed25519.Sign(other, signedMessage(doc)))
			}},
		{name: "signature without the domain-separation prefix", want: ErrBadSignature,
			doc: func() ([]byte, []byte) {
				return doc, envelope(KeyIDOf(pub(key)), AlgEd25519, ed25519.Sign(key, doc))
			}},
		{name: "image statement signature presented as document signature", want: ErrBadSignature,
			doc: func() ([]byte, []byte) { return doc, envelope(KeyIDOf(pub(key)), AlgEd25519, m.ImageSig[:]) }},
		{name: "document signature from another release", want: ErrBadSignature,
			doc: func() ([]byte, []byte) { return doc41, sig }},
		{name: "truncated document with its old signature", want: ErrBadSignature,
			doc: func() ([]byte, []byte) { return doc[:len(doc)/2], sig }},
		{name: "truncated document, signed", want: ErrMalformed,
			doc: func() ([]byte, []byte) { d := doc[:len(doc)/2]; return d, resign(key)(d) }},
		// Refused on size alone, before the signature is even looked at.
		{name: "oversize document", want: ErrTooLarge,
			doc: func() ([]byte, []byte) {
				return append(bytes.Clone(doc), bytes.Repeat([]byte(" "), MaxDocSize+1-len(doc))...), sig
			}},
		{name: "oversize signature file", want: ErrTooLarge,
			doc: func() ([]byte, []byte) { return doc, append(bytes.Clone(sig), make([]byte, MaxSigSize)...) }},
		{name: "signature envelope is not JSON", want: ErrMalformed,
			doc: func() ([]byte, []byte) { return doc, []byte("untrusted comment: minisign\n") }},
		{name: "signature envelope with another algorithm", want: ErrMalformed,
			doc: func() ([]byte, []byte) {
				return doc, envelope(KeyIDOf(pub(key)), "ecdsa-p256", ed25519.Sign(key, signedMessage(doc)))
			}},
		{name: "signature envelope with an unknown field", want: ErrMalformed,
			doc: func() ([]byte, []byte) { return doc, edit(t, sig, `"alg"`, `"comment": "x", "alg"`) }},
		{name: "signature envelope without key ID", want: ErrMalformed,
			doc: func() ([]byte, []byte) { return doc, []byte(`{"alg":"ed25519","sig":"` + imageSigB64 + `"}`) }},
		{name: "valid document signature, image_sig for another seq", want: ErrBadImageSignature,
			doc: func() ([]byte, []byte) { d := edit(t, doc, `"seq": 42`, `"seq": 43`); return d, resign(key)(d) }},
		{name: "valid document signature, image_sig for another size", want: ErrBadImageSignature,
			doc: func() ([]byte, []byte) {
				d := edit(t, doc, fmt.Sprintf(`"size": %d`, len(testImage)), `"size": 1`)
				return d, resign(key)(d)
			}},
		{name: "valid document signature, image_sig by another key", want: ErrBadImageSignature,
			doc: func() ([]byte, []byte) {
				om, err := testVerifier(other).Verify(otherDoc, otherSig, opts.Class)
				if err != nil {
					t.Fatal(err)
				}
				d := edit(t, doc, imageSigB64, base64.StdEncoding.EncodeToString(om.ImageSig[:]))
				return d, resign(key)(d)
			}},
		{name: "manifest for another class", class: "esp-lamp", want: ErrWrongClass,
			doc: func() ([]byte, []byte) { return doc, sig }},
		{name: "invalid requested class", class: "esp/lamp", want: ErrWrongClass,
			doc: func() ([]byte, []byte) { return doc, sig }},
		{name: "expired at exactly the expiry time", want: ErrExpired,
			verifier: &Verifier{Keys: []ed25519.PublicKey{pub(key)}, Now: func() time.Time { return opts.Expires }},
			doc:      func() ([]byte, []byte) { return doc, sig }},
		{name: "expired long ago", want: ErrExpired,
			verifier: &Verifier{Keys: []ed25519.PublicKey{pub(key)}, Now: func() time.Time { return opts.Expires.AddDate(1, 0, 0) }},
			doc:      func() ([]byte, []byte) { return doc, sig }},
		{name: "http image URL", want: ErrInsecureURL,
			doc: func() ([]byte, []byte) {
				d := edit(t, doc, `"url": "`, `"url": "http://fw.example.com/`)
				return d, resign(key)(d)
			}},
		{name: "size over uint32", want: ErrMalformed,
			doc: func() ([]byte, []byte) {
				d := edit(t, doc, fmt.Sprintf(`"size": %d`, len(testImage)), `"size": 4294967296`)
				return d, resign(key)(d)
			}},
		{name: "unknown field", want: ErrMalformed,
			doc: func() ([]byte, []byte) {
				d := edit(t, doc, `"seq"`, `"channel": "beta", "seq"`)
				return d, resign(key)(d)
			}},
		{name: "misspelt optional field", want: ErrMalformed,
			doc: func() ([]byte, []byte) { d := edit(t, doc, `"min_seq"`, `"min_sequence"`); return d, resign(key)(d) }},
		{name: "no keys configured", want: ErrUnknownKey, verifier: &Verifier{},
			doc: func() ([]byte, []byte) { return doc, sig }},
		{name: "configured key of the wrong length", want: ErrBadKey,
			verifier: &Verifier{Keys: []ed25519.PublicKey{pub(key)[:31]}},
			doc:      func() ([]byte, []byte) { return doc, sig }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, s := tt.doc()
			class := opts.Class
			if tt.class != "" {
				class = tt.class
			}
			v := tt.verifier
			if v == nil {
				v = testVerifier(key)
			}
			m, err := v.Verify(d, s, class)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
			if m != nil {
				t.Error("Verify returned a manifest along with an error")
			}
			if !strings.HasPrefix(err.Error(), "manifest "+class+": ") {
				t.Errorf("error %q does not start with the class context", err)
			}
		})
	}
}

// Every single-bit change anywhere in the document must break the signature: the document is
// verified byte for byte, never re-serialized.
func TestVerifyRejectsEveryFlippedDocumentBit(t *testing.T) {
	key := testKey("vendor")
	doc, sig := mustPublish(t, testOptions(), key)
	v := testVerifier(key)
	for i := range doc {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			d := bytes.Clone(doc)
			d[i] ^= bit
			if _, err := v.Verify(d, sig, "esp-relay"); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("byte %d ^ %#x: error = %v, want ErrBadSignature", i, bit, err)
			}
		}
	}
}

// Verification depends on the signed bytes, not on the layout Publish happens to write: any
// valid JSON layout of the same fields that the vendor signed is accepted.
func TestVerifyAcceptsAnySignedLayout(t *testing.T) {
	key := testKey("vendor")
	doc, sig := mustPublish(t, testOptions(), key)
	want, err := testVerifier(key).Verify(doc, sig, "esp-relay")
	if err != nil {
		t.Fatal(err)
	}
	compact := []byte(strings.Join(strings.Fields(string(doc)), ""))
	got, err := testVerifier(key).Verify(compact, signDoc(compact, key), "esp-relay")
	if err != nil {
		t.Fatalf("compact layout: %v", err)
	}
	if *got != *want {
		t.Errorf("compact layout gives %+v, want %+v", got, want)
	}
}

func TestVerifyAcceptsEitherRotatedKey(t *testing.T) {
	oldKey, newKey := testKey("2025"), testKey("2026")
	v := testVerifier(oldKey, newKey)
	for _, key := range []ed25519.PrivateKey{oldKey, newKey} {
		doc, sig := mustPublish(t, testOptions(), key)
		m, err := v.Verify(doc, sig, "esp-relay")
		if err != nil {
			t.Fatalf("key %s: %v", KeyIDOf(pub(key)), err)
		}
		if m.KeyID != KeyIDOf(pub(key)) {
			t.Errorf("KeyID = %s, want %s", m.KeyID, KeyIDOf(pub(key)))
		}
	}
	// Once the old key is removed from the configuration, its manifests are refused.
	doc, sig := mustPublish(t, testOptions(), oldKey)
	if _, err := testVerifier(newKey).Verify(doc, sig, "esp-relay"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old key after removal: error = %v, want ErrUnknownKey", err)
	}
}

func TestKeyIDIsFirstEightBytesOfSHA256(t *testing.T) {
	key := testKey("vendor")
	sum := sha256.Sum256(pub(key))
	if got, want := KeyIDOf(pub(key)).String(), fmt.Sprintf("%x", sum[:8]); got != want {
		t.Errorf("KeyID = %s, want %s", got, want)
	}
}
