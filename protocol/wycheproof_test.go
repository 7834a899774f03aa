package protocol

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"testing"

	"github.com/c2sp/wycheproof"
	"golang.org/x/crypto/chacha20poly1305"
)

// The building blocks of the protocol against Project Wycheproof's vectors: ChaCha20-Poly1305
// both bare and through the record layer (halfConn), HKDF-SHA256 as keys.go calls it, and
// HMAC-SHA256 at full length and at mac1's 128-bit truncation (computeMAC1). Every case runs
// unless it is outside what the protocol can express; those are counted by reason.

// wpHex is a Wycheproof byte string (hex).
type wpHex []byte

func (h *wpHex) UnmarshalText(s []byte) error {
	b, err := hex.DecodeString(string(s))
	*h = b
	return err
}

// wpFile is the envelope shared by every Wycheproof file; G is the file's test group.
type wpFile[G any] struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []G    `json:"testGroups"`
}

type wpCase struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  string   `json:"result"` // valid, invalid or acceptable
}

func loadWycheproof[G any](t *testing.T, name string) *wpFile[G] {
	t.Helper()
	b, err := fs.ReadFile(wycheproof.TestVectors, name)
	if err != nil {
		t.Fatal(err)
	}
	var f wpFile[G]
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &f
}

// wpTally counts cases. A case passes when none of its checks failed.
type wpTally struct {
	t       *testing.T
	file    string
	tested  int
	passed  int
	skipped map[string]int
}

func newTally(t *testing.T, file string) *wpTally {
	return &wpTally{t: t, file: file, skipped: map[string]int{}}
}

func (w *wpTally) skip(reason string) { w.skipped[reason]++ }

// run checks one case: check reports each failure, and the case passes when it reported none.
func (w *wpTally) run(c *wpCase, body func(check func(ok bool, format string, args ...any))) {
	w.tested++
	failed := false
	body(func(ok bool, format string, args ...any) {
		if !ok {
			failed = true
			w.t.Errorf("%s tcId %d (%s, %s %v): %s", w.file, c.TcID, c.Comment, c.Result, c.Flags, fmt.Sprintf(format, args...))
		}
	})
	if !failed {
		w.passed++
	}
}

// done makes sure the file was read at all and that every case was either tested or skipped
// for a stated reason, and logs the counts.
func (w *wpTally) done(numberOfTests int) {
	skipped := 0
	for _, n := range w.skipped {
		skipped += n
	}
	if w.tested == 0 {
		w.t.Fatalf("%s: no case tested", w.file)
	}
	if w.tested+skipped != numberOfTests {
		w.t.Errorf("%s: %d tested + %d skipped, the file has %d", w.file, w.tested, skipped, numberOfTests)
	}
	w.t.Logf("%s: %d tested, %d passed, %d skipped %v", w.file, w.tested, w.passed, skipped, w.skipped)
}

func TestWycheproofChaCha20Poly1305(t *testing.T) {
	type testCase struct {
		wpCase
		Key wpHex `json:"key"`
		IV  wpHex `json:"iv"`
		AAD wpHex `json:"aad"`
		Msg wpHex `json:"msg"`
		CT  wpHex `json:"ct"`
		Tag wpHex `json:"tag"`
	}
	type group struct {
		Type  string     `json:"type"`
		Tests []testCase `json:"tests"`
	}
	const file = "chacha20_poly1305_test.json"
	f := loadWycheproof[group](t, file)
	w := newTally(t, file)
	for _, g := range f.TestGroups {
		for _, c := range g.Tests {
			switch {
			case len(c.IV) != chacha20poly1305.NonceSize:
				// The record layer only ever builds 12-byte nonces (IV XOR counter).
				w.skip("nonce not 12 bytes")
				continue
			case len(c.Key) != KeySize:
				w.skip(fmt.Sprintf("%d-byte key", len(c.Key)))
				continue
			case c.Result != "valid" && c.Result != "invalid":
				w.skip(c.Result)
				continue
			}
			w.run(&c.wpCase, func(check func(bool, string, ...any)) {
				aead, err := chacha20poly1305.New(c.Key)
				if err != nil {
					check(false, "New: %v", err)
					return
				}
				sealed := append(bytes.Clone(c.CT), c.Tag...)
				opened, err := aead.Open(nil, c.IV, sealed, c.AAD)
				// The record layer with the case's key as traffic key and its nonce as IV:
				// counter 0 makes the nonce the IV itself.
				dk := directionKeys{key: [KeySize]byte(c.Key), iv: [IVSize]byte(c.IV)}
				if c.Result == "invalid" {
					check(err != nil, "Open accepted a forgery")
					if len(c.AAD) == 0 { // the record layer always has a header to authenticate
						return
					}
					h, _ := newHalfConn(&dk)
					_, err := h.open(c.AAD, bytes.Clone(sealed))
					check(err != nil, "halfConn.open accepted a forgery")
					check(h.counter == 0, "halfConn.open moved the counter to %d on a forgery", h.counter)
					return
				}
				check(err == nil && bytes.Equal(opened, c.Msg), "Open: %v, plaintext %x", err, opened)
				got := aead.Seal(nil, c.IV, c.Msg, c.AAD)
				check(bytes.Equal(got, sealed), "Seal gives %x, want %x", got, sealed)
				// In place, as AppendFrame seals: the plaintext sits where the ciphertext goes.
				buf := make([]byte, len(c.Msg), len(sealed))
				copy(buf, c.Msg)
				got = aead.Seal(buf[:0], c.IV, buf, c.AAD)
				check(bytes.Equal(got, sealed), "in-place Seal gives %x", got)

				h, _ := newHalfConn(&dk)
				got, err = h.seal(nil, c.AAD, c.Msg)
				check(err == nil && bytes.Equal(got, sealed), "halfConn.seal gives %x, %v", got, err)
				h, _ = newHalfConn(&dk)
				opened, err = h.open(c.AAD, bytes.Clone(sealed))
				check(err == nil && bytes.Equal(opened, c.Msg), "halfConn.open: %v, plaintext %x", err, opened)
				check(h.counter == 1, "halfConn.open left the counter at %d", h.counter)
			})
		}
	}
	w.done(f.NumberOfTests)
}

func TestWycheproofHKDFSHA256(t *testing.T) {
	type testCase struct {
		wpCase
		IKM  wpHex `json:"ikm"`
		Salt wpHex `json:"salt"`
		Info wpHex `json:"info"`
		Size int   `json:"size"`
		OKM  wpHex `json:"okm"`
	}
	type group struct {
		Tests []testCase `json:"tests"`
	}
	const file = "hkdf_sha256_test.json"
	f := loadWycheproof[group](t, file)
	w := newTally(t, file)
	for _, g := range f.TestGroups {
		for _, c := range g.Tests {
			if c.Result != "valid" && c.Result != "invalid" {
				w.skip(c.Result)
				continue
			}
			w.run(&c.wpCase, func(check func(bool, string, ...any)) {
				// mac1Key calls Key; deriveSessionKeys calls Extract, then Expand per direction.
				key, errKey := hkdf.Key(sha256.New, c.IKM, c.Salt, string(c.Info), c.Size)
				prk, err := hkdf.Extract(sha256.New, c.IKM, c.Salt)
				check(err == nil, "Extract: %v", err)
				okm, errExpand := hkdf.Expand(sha256.New, prk, string(c.Info), c.Size)
				if c.Result == "invalid" {
					check(errKey != nil, "Key gave %d bytes for an invalid size %d", len(key), c.Size)
					check(errExpand != nil, "Expand gave %d bytes for an invalid size %d", len(okm), c.Size)
					return
				}
				check(errKey == nil && bytes.Equal(key, c.OKM), "Key: %v, %x", errKey, key)
				check(errExpand == nil && bytes.Equal(okm, c.OKM), "Extract+Expand: %v, %x", errExpand, okm)
			})
		}
	}
	w.done(f.NumberOfTests)
}

func TestWycheproofHMACSHA256(t *testing.T) {
	type testCase struct {
		wpCase
		Key wpHex `json:"key"`
		Msg wpHex `json:"msg"`
		Tag wpHex `json:"tag"`
	}
	type group struct {
		TagSize int        `json:"tagSize"` // bits
		Tests   []testCase `json:"tests"`
	}
	const file = "hmac_sha256_test.json"
	f := loadWycheproof[group](t, file)
	w := newTally(t, file)
	mac1Cases := 0
	for _, g := range f.TestGroups {
		for _, c := range g.Tests {
			if c.Result != "valid" && c.Result != "invalid" {
				w.skip(c.Result)
				continue
			}
			w.run(&c.wpCase, func(check func(bool, string, ...any)) {
				n := g.TagSize / 8
				if n <= 0 || n > sha256.Size || len(c.Tag) != n {
					check(false, "tag of %d bytes for a %d-bit tag size", len(c.Tag), g.TagSize)
					return
				}
				m := hmac.New(sha256.New, c.Key)
				m.Write(c.Msg)
				full := m.Sum(nil)
				match := hmac.Equal(full[:n], c.Tag)
				check(match == (c.Result == "valid"), "HMAC %x, tag %x", full[:n], c.Tag)
				// mac1 is HMAC-SHA256 under a 32-byte key, truncated to 128 bits: it must match a
				// 128-bit tag exactly when the case is valid, and the head of a valid full tag.
				if len(c.Key) != KeySize || (n != MACSize && c.Result != "valid") {
					return
				}
				mac1Cases++
				mac := computeMAC1((*[KeySize]byte)(c.Key), c.Msg)
				check(hmac.Equal(mac[:], c.Tag[:MACSize]) == (c.Result == "valid"), "computeMAC1 gives %x, tag %x", mac, c.Tag)
			})
		}
	}
	if mac1Cases == 0 {
		t.Error("no case went through computeMAC1")
	}
	t.Logf("%s: %d cases also through computeMAC1", file, mac1Cases)
	w.done(f.NumberOfTests)
}
