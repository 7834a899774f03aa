package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"testing"
	"time"
)

// testNow is the verifiers' clock in tests: fixed, so expiry cases are exact.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testImage is a small image with a recognizable pattern.
var testImage = bytes.Repeat([]byte("fotagate test firmware\n"), 50)

// testKey derives a deterministic key from name, so failures are reproducible.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("fotagate manifest test key: " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(key ed25519.PrivateKey) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) }

func testOptions() PublishOptions {
	return PublishOptions{
		Class:   "esp-relay",
		Version: "1.4.2",
		Seq:     42,
		MinSeq:  40,
		Expires: testNow.Add(720 * time.Hour),
	}
}

func testVerifier(keys ...ed25519.PrivateKey) *Verifier {
	v := &Verifier{Now: func() time.Time { return testNow }}
	for _, k := range keys {
		v.Keys = append(v.Keys, pub(k))
	}
	return v
}

// mustPublish publishes testImage with opts and key.
func mustPublish(t testing.TB, opts PublishOptions, key ed25519.PrivateKey) (doc, sig []byte) {
	t.Helper()
	doc, sig, err := Publish(bytes.NewReader(testImage), opts, key)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return doc, sig
}

// edit replaces old by new in doc exactly once, failing the test if old is not there, so a
// change to the layout cannot silently turn a negative test into a no-op.
func edit(t testing.TB, doc []byte, old, new string) []byte {
	t.Helper()
	s := string(doc)
	if strings.Count(s, old) != 1 {
		t.Fatalf("edit: %q occurs %d times in\n%s", old, strings.Count(s, old), s)
	}
	return []byte(strings.Replace(s, old, new, 1))
}
