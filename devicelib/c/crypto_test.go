package c_test

// Tests of the C crypto (include/fota_crypto.h) that need Go: every relevant Project Wycheproof
// vector, and differential tests against the Go standard library and golang.org/x/crypto on
// random inputs. Both drive tests/harness.c, built here with gcc under ASan and UBSan, over its
// line protocol. The RFC known-answer tests are in tests/test_crypto.c (`make test`).

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/c2sp/wycheproof"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// buildDir holds the harness binary for the whole test run.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fota-c-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildHarness compiles tests/harness.c.
func buildHarness() (string, error) { return testBinary("harness") }

// testBinaries builds, once and in one make run (two jobs: CI has two cores), every C program
// the tests run, into buildDir, so the flags are the Makefile's (warnings as errors,
// sanitizers): the crypto harness, the device harnesses, and fotadev-c for each chunk limit,
// with the sanitizers added.
var testBinaries = sync.OnceValue(func() error {
	targets := []string{"harness", "vectors", "vectors_64", "ed25519_harness", "vectors_ed25519"}
	for _, n := range interopPayloads {
		targets = append(targets, fmt.Sprintf("fotadev-c-%d", n))
	}
	args := []string{"-s", "-j2", "BUILD=" + buildDir,
		"FOTADEV_CFLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all"}
	for _, t := range targets {
		args = append(args, filepath.Join(buildDir, t))
	}
	if out, err := exec.Command("make", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("building the C test programs (needs make and gcc: run ./.ci/deps): %v\n%s", err, out)
	}
	return nil
})

// testBinary returns the path of one of the programs testBinaries builds.
func testBinary(name string) (string, error) {
	if err := testBinaries(); err != nil {
		return "", err
	}
	return filepath.Join(buildDir, name), nil
}

// harness is one running tests/harness.c: each request line gets one answer line.
type harness struct {
	t      *testing.T
	in     io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
}

func startHarness(t *testing.T) *harness { return startProgram(t, buildHarness) }

// startProgram runs the line-protocol program that build returns.
func startProgram(t *testing.T, build func() (string, error)) *harness {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t}
	cmd := exec.Command(bin)
	cmd.Stderr = &h.stderr
	if h.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.out = bufio.NewReaderSize(stdout, 1<<16)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("harness exited with %v; stderr:\n%s", err, h.stderr.String())
		}
	})
	return h
}

// do sends one request and returns the answer's space-separated fields.
func (h *harness) do(fields ...string) []string {
	h.t.Helper()
	if _, err := io.WriteString(h.in, strings.Join(fields, " ")+"\n"); err != nil {
		h.t.Fatalf("writing to harness: %v; stderr:\n%s", err, h.stderr.String())
	}
	line, err := h.out.ReadString('\n')
	if err != nil {
		h.t.Fatalf("reading from harness: %v; stderr:\n%s", err, h.stderr.String())
	}
	answer := strings.Fields(line)
	if len(answer) == 0 || answer[0] == "error" {
		h.t.Fatalf("harness answered %q to %.80q", line, strings.Join(fields, " "))
	}
	return answer
}

// hx encodes b for the harness: hex, or "-" when empty.
func hx(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

// unhx decodes a harness field.
func unhx(t *testing.T, s string) []byte {
	t.Helper()
	if s == "-" {
		return nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("harness field %.40q: %v", s, err)
	}
	return b
}

// seal and open run the C AEAD.
func (h *harness) seal(key, nonce, ad, pt []byte) (ct, tag []byte) {
	a := h.do("seal", hx(key), hx(nonce), hx(ad), hx(pt))
	if len(a) != 2 {
		h.t.Fatalf("seal answered %q", a)
	}
	return unhx(h.t, a[0]), unhx(h.t, a[1])
}

// open returns whether the C AEAD accepted, and the buffer it left behind.
func (h *harness) open(key, nonce, ad, ct, tag []byte) (ok bool, buf []byte) {
	a := h.do("open", hx(key), hx(nonce), hx(ad), hx(ct), hx(tag))
	if len(a) != 2 || (a[0] != "ok" && a[0] != "fail") {
		h.t.Fatalf("open answered %q", a)
	}
	return a[0] == "ok", unhx(h.t, a[1])
}

// hexBytes is a Wycheproof hex field.
type hexBytes []byte

func (b *hexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*b = v
	return err
}

type wycheproofFile[T any] struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		TagSize int `json:"tagSize"`
		Tests   []T `json:"tests"`
	} `json:"testGroups"`
}

type wycheproofCase struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  string   `json:"result"`
}

func (c wycheproofCase) String() string {
	return fmt.Sprintf("tcId %d (%s, %v)", c.TcID, c.Comment, c.Flags)
}

func loadWycheproof[T any](t *testing.T, name string) *wycheproofFile[T] {
	t.Helper()
	data, err := fs.ReadFile(wycheproof.TestVectors, name)
	if err != nil {
		t.Fatalf("Wycheproof %s: %v", name, err)
	}
	var f wycheproofFile[T]
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("Wycheproof %s: %v", name, err)
	}
	return &f
}

// tally counts Wycheproof cases run and skipped (by reason), and checks none was lost.
type tally struct {
	passed  int
	skipped map[string]int
}

func (c *tally) report(t *testing.T, file string, total int) {
	t.Helper()
	skipped := 0
	for reason, n := range c.skipped {
		skipped += n
		t.Logf("%s: skipped %d: %s", file, n, reason)
	}
	t.Logf("%s: %d passed, %d skipped, of %d", file, c.passed, skipped, total)
	if c.passed+skipped != total {
		t.Errorf("%s: ran %d + skipped %d cases, but the file has %d", file, c.passed, skipped, total)
	}
}

func TestWycheproofChaCha20Poly1305(t *testing.T) {
	t.Parallel()
	type aeadCase struct {
		wycheproofCase
		Key, IV, AAD, Msg, CT, Tag hexBytes
	}
	const file = "chacha20_poly1305_test.json"
	f := loadWycheproof[aeadCase](t, file)
	h := startHarness(t)
	c := tally{skipped: map[string]int{}}
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			if len(tc.IV) != chacha20poly1305.NonceSize || len(tc.Key) != chacha20poly1305.KeySize {
				// fota_aead_* take a 12-byte nonce and a 32-byte key by type, so a vector
				// with another size cannot be expressed. Only invalid ones may be skipped.
				if tc.Result == "valid" {
					t.Errorf("%v: valid case with a %d-byte nonce cannot be run", tc, len(tc.IV))
				}
				c.skipped["nonce not 12 bytes (fota_aead_* take uint8_t nonce[12]; RFC 8439 allows no other size)"]++
				continue
			}
			ct, tag := h.seal(tc.Key, tc.IV, tc.AAD, tc.Msg)
			ok, buf := h.open(tc.Key, tc.IV, tc.AAD, tc.CT, tc.Tag)
			switch tc.Result {
			case "valid", "acceptable":
				if !bytes.Equal(ct, tc.CT) || !bytes.Equal(tag, tc.Tag) {
					t.Errorf("%v: seal gave %x %x, want %x %x", tc, ct, tag, tc.CT, tc.Tag)
				}
				if !ok || !bytes.Equal(buf, tc.Msg) {
					t.Errorf("%v: open gave %v %x, want the message", tc, ok, buf)
				}
			default:
				if bytes.Equal(ct, tc.CT) && bytes.Equal(tag, tc.Tag) {
					t.Errorf("%v: seal reproduced an invalid ciphertext and tag", tc)
				}
				if ok {
					t.Errorf("%v: open accepted an invalid ciphertext", tc)
				}
				if !bytes.Equal(buf, tc.CT) {
					t.Errorf("%v: failed open changed the buffer (released plaintext?)", tc)
				}
			}
			c.passed++
		}
	}
	c.report(t, file, f.NumberOfTests)
}

func TestWycheproofHKDFSHA256(t *testing.T) {
	t.Parallel()
	type hkdfCase struct {
		wycheproofCase
		IKM, Salt, Info, OKM hexBytes
		Size                 int
	}
	const file = "hkdf_sha256_test.json"
	f := loadWycheproof[hkdfCase](t, file)
	h := startHarness(t)
	c := tally{skipped: map[string]int{}}
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			a := h.do("hkdf", hx(tc.IKM), hx(tc.Salt), hx(tc.Info), fmt.Sprint(tc.Size))
			switch tc.Result {
			case "valid", "acceptable":
				if a[0] == "fail" || !bytes.Equal(unhx(t, a[0]), tc.OKM) {
					t.Errorf("%v: got %.80s, want %x", tc, a[0], tc.OKM)
				}
			default:
				if a[0] != "fail" {
					t.Errorf("%v: size %d accepted, want refused", tc, tc.Size)
				}
			}
			c.passed++
		}
	}
	c.report(t, file, f.NumberOfTests)
}

func TestWycheproofHMACSHA256(t *testing.T) {
	t.Parallel()
	type macCase struct {
		wycheproofCase
		Key, Msg, Tag hexBytes
	}
	const file = "hmac_sha256_test.json"
	f := loadWycheproof[macCase](t, file)
	h := startHarness(t)
	c := tally{skipped: map[string]int{}}
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			if len(tc.Tag) != g.TagSize/8 {
				t.Fatalf("%v: tag of %d bytes in a group of %d-bit tags", tc, len(tc.Tag), g.TagSize)
			}
			mac := unhx(t, h.do("hmac", "0", hx(tc.Key), hx(tc.Msg))[0])
			verdict := h.do("hmac", "0", hx(tc.Key), hx(tc.Msg), hx(tc.Tag))[0]
			switch tc.Result {
			case "valid", "acceptable":
				if !bytes.Equal(mac[:len(tc.Tag)], tc.Tag) || verdict != "ok" {
					t.Errorf("%v: got %x (%s), want %x", tc, mac, verdict, tc.Tag)
				}
			default:
				if verdict != "fail" {
					t.Errorf("%v: modified tag %x accepted", tc, tc.Tag)
				}
			}
			c.passed++
		}
	}
	c.report(t, file, f.NumberOfTests)
}

// randLen picks a length in 0..max: half the time small (the first blocks and their edges,
// where padding and carries go wrong), half the time anywhere.
func randLen(r *rand.Rand, max int) int {
	if r.IntN(2) == 0 {
		return r.IntN(min(max, 130) + 1)
	}
	return r.IntN(max + 1)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// The differential tests use fixed seeds, so a failure reproduces; each names its iteration.

func TestDifferentialAEAD(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	r := rand.New(rand.NewPCG(8439, 1))
	for i := range 1500 {
		key, nonce := randBytes(r, 32), randBytes(r, 12)
		ad, pt := randBytes(r, randLen(r, 600)), randBytes(r, randLen(r, 5000))
		aead, err := chacha20poly1305.New(key)
		if err != nil {
			t.Fatal(err)
		}
		want := aead.Seal(nil, nonce, pt, ad)
		ct, tag := h.seal(key, nonce, ad, pt)
		if !bytes.Equal(append(ct, tag...), want) {
			t.Fatalf("iteration %d (ad %d, pt %d bytes): seal differs from x/crypto", i, len(ad), len(pt))
		}
		if ok, buf := h.open(key, nonce, ad, ct, tag); !ok || !bytes.Equal(buf, pt) {
			t.Fatalf("iteration %d (ad %d, pt %d bytes): open failed", i, len(ad), len(pt))
		}

		// Flip one bit of the ciphertext, the tag or the AD: both must reject, and the C
		// buffer must still hold the (changed) ciphertext.
		ct2, tag2, ad2 := bytes.Clone(ct), bytes.Clone(tag), bytes.Clone(ad)
		var where string
		switch target := r.IntN(3); {
		case target == 0 && len(ct2) > 0:
			ct2[r.IntN(len(ct2))] ^= 1 << r.IntN(8)
			where = "ciphertext"
		case target == 1 && len(ad2) > 0:
			ad2[r.IntN(len(ad2))] ^= 1 << r.IntN(8)
			where = "AD"
		default:
			tag2[r.IntN(16)] ^= 1 << r.IntN(8)
			where = "tag"
		}
		if _, err := aead.Open(nil, nonce, append(bytes.Clone(ct2), tag2...), ad2); err == nil {
			t.Fatalf("iteration %d: x/crypto accepted a flipped %s bit", i, where)
		}
		ok, buf := h.open(key, nonce, ad2, ct2, tag2)
		if ok {
			t.Fatalf("iteration %d (ad %d, pt %d bytes): accepted a flipped %s bit", i, len(ad), len(pt), where)
		}
		if !bytes.Equal(buf, ct2) {
			t.Fatalf("iteration %d: rejected open changed the buffer", i)
		}
	}
}

func TestDifferentialSHA256(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	r := rand.New(rand.NewPCG(180, 4))
	for i := range 1000 {
		msg := randBytes(r, randLen(r, 5000))
		chunk := r.IntN(150) // 0: one update
		want := sha256.Sum256(msg)
		got := unhx(t, h.do("sha256", fmt.Sprint(chunk), hx(msg))[0])
		if !bytes.Equal(got, want[:]) {
			t.Fatalf("iteration %d (%d bytes in chunks of %d): got %x, want %x", i, len(msg), chunk, got, want)
		}
	}
}

func TestDifferentialHMACSHA256(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	r := rand.New(rand.NewPCG(2104, 4231))
	for i := range 1000 {
		key := randBytes(r, randLen(r, 200)) // past 64 bytes the key is hashed first
		msg := randBytes(r, randLen(r, 5000))
		chunk := r.IntN(150)
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		want := m.Sum(nil)
		got := unhx(t, h.do("hmac", fmt.Sprint(chunk), hx(key), hx(msg))[0])
		if !bytes.Equal(got, want) {
			t.Fatalf("iteration %d (key %d, msg %d bytes): got %x, want %x", i, len(key), len(msg), got, want)
		}
	}
}

func TestDifferentialHKDFSHA256(t *testing.T) {
	t.Parallel()
	h := startHarness(t)
	r := rand.New(rand.NewPCG(5869, 1))
	const maxOKM = 255 * sha256.Size
	for i := range 500 {
		ikm, salt, info := randBytes(r, randLen(r, 200)), randBytes(r, randLen(r, 200)), randBytes(r, randLen(r, 200))
		size := randLen(r, maxOKM+40) // a few past the limit, which must be refused
		got := h.do("hkdf", hx(ikm), hx(salt), hx(info), fmt.Sprint(size))[0]
		want := make([]byte, size)
		_, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt, info), want)
		switch {
		case size > maxOKM:
			if err == nil || got != "fail" {
				t.Fatalf("iteration %d: size %d: C gave %.20s, x/crypto error %v; both must refuse", i, size, got, err)
			}
		case err != nil:
			t.Fatal(err)
		case got == "fail" || !bytes.Equal(unhx(t, got), want):
			t.Fatalf("iteration %d (ikm %d, salt %d, info %d, size %d): outputs differ", i, len(ikm), len(salt), len(info), size)
		}
	}
}

// ---- Ed25519 (FOTA_WITH_ED25519): tests/ed25519_harness.c against crypto/ed25519 ----
//
// The C verifier must give Go's verdict on every input (src/fota_ed25519.c states the policy),
// since the gateway and the Go device decide with crypto/ed25519: a signature valid to them is
// valid to the C device, and the other way round.

func startEd25519Harness(t *testing.T) *harness {
	return startProgram(t, func() (string, error) { return testBinary("ed25519_harness") })
}

// cVerify asks the C harness for a verdict, the message fed in pieces of chunk bytes (0: whole).
func cVerify(h *harness, chunk int, pub, msg, sig []byte) bool {
	a := h.do("verify", fmt.Sprint(chunk), hx(pub), hx(msg), hx(sig))
	if a[0] != "ok" && a[0] != "fail" {
		h.t.Fatalf("verify answered %q", a)
	}
	return a[0] == "ok"
}

func TestWycheproofEd25519(t *testing.T) {
	t.Parallel()
	type sigCase struct {
		wycheproofCase
		Msg, Sig hexBytes
	}
	const file = "ed25519_test.json"
	data, err := fs.ReadFile(wycheproof.TestVectors, file)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		NumberOfTests int `json:"numberOfTests"`
		TestGroups    []struct {
			PublicKey struct {
				PK hexBytes `json:"pk"`
			} `json:"publicKey"`
			Tests []sigCase `json:"tests"`
		} `json:"testGroups"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	h := startEd25519Harness(t)
	c := tally{skipped: map[string]int{}}
	valid, invalid := 0, 0
	for gi, g := range f.TestGroups {
		pub := []byte(g.PublicKey.PK)
		if len(pub) != ed25519.PublicKeySize {
			t.Fatalf("group %d: key of %d bytes", gi, len(pub))
		}
		for i, tc := range g.Tests {
			goOK := len(tc.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, tc.Msg, tc.Sig)
			if goOK != (tc.Result == "valid") {
				// Go is the reference here; say where it parts from Wycheproof.
				t.Logf("%v: Wycheproof says %s, crypto/ed25519 says %v", tc, tc.Result, goOK)
			}
			if len(tc.Sig) != ed25519.SignatureSize {
				// fota_ed25519_init takes uint8_t sig[64]: another length cannot be passed.
				if goOK {
					t.Errorf("%v: a %d-byte signature valid to Go", tc, len(tc.Sig))
				}
				c.skipped["signature not 64 bytes (the API takes exactly 64; Go rejects them too)"]++
				continue
			}
			if got := cVerify(h, i%3*7, pub, tc.Msg, tc.Sig); got != goOK {
				t.Errorf("%v: C says %v, crypto/ed25519 says %v", tc, got, goOK)
			}
			if goOK {
				valid++
			} else {
				invalid++
			}
			c.passed++
		}
	}
	t.Logf("%s: %d valid and %d invalid signatures, C and Go agree", file, valid, invalid)
	c.report(t, file, f.NumberOfTests)
}

// TestEd25519SignInputVectors replays Go's own Ed25519 test vectors (the first 128 of the
// SUPERCOP/ref10 sign.input, in GOROOT): each must verify, and with one bit of its signature or
// message flipped must not.
func TestEd25519SignInputVectors(t *testing.T) {
	t.Parallel()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	fh, err := os.Open(filepath.Join(strings.TrimSpace(string(goroot)), "src", "crypto", "ed25519", "testdata", "sign.input.gz"))
	if err != nil {
		t.Fatalf("Go's Ed25519 vectors: %v", err)
	}
	defer fh.Close()
	gz, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	h := startEd25519Harness(t)
	r := rand.New(rand.NewPCG(25519, 1))
	sc := bufio.NewScanner(gz)
	sc.Buffer(nil, 1<<20)
	n := 0
	for line := 0; sc.Scan(); line++ {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) != 5 {
			t.Fatalf("line %d: %d fields", line, len(parts))
		}
		pub, msg, sigMsg := unhx(t, parts[1]), unhx(t, parts[2]), unhx(t, parts[3])
		sig := sigMsg[:ed25519.SignatureSize]
		if !cVerify(h, line%5, pub, msg, sig) {
			t.Errorf("line %d: valid signature of a %d-byte message rejected", line, len(msg))
		}
		bad, badMsg := bytes.Clone(sig), bytes.Clone(msg)
		if len(msg) > 0 && r.IntN(2) == 0 {
			badMsg[r.IntN(len(msg))] ^= 1 << r.IntN(8)
		} else {
			bad[r.IntN(len(bad))] ^= 1 << r.IntN(8)
		}
		if cVerify(h, 0, pub, badMsg, bad) || ed25519.Verify(pub, badMsg, bad) {
			t.Errorf("line %d: a flipped bit accepted", line)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 128 {
		t.Fatalf("replayed %d vectors, want 128", n)
	}
}

// groupOrder is L, little-endian.
var groupOrder = unhxMust("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")

func unhxMust(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// addLE returns a + b for 32-byte little-endian numbers (mod 2^256).
func addLE(a, b []byte) []byte {
	out := make([]byte, 32)
	c := 0
	for i := range out {
		c += int(a[i]) + int(b[i])
		out[i] = byte(c)
		c >>= 8
	}
	return out
}

// TestDifferentialEd25519 signs random messages under random keys with crypto/ed25519 and
// has both sides judge the signature and a tampered copy: a flipped bit of R, S, the key or
// the message, S + L (the same point: malleability), a key whose y is p or more (y + p where
// that fits in 255 bits, else p + 0..18; TestEd25519EncodingPolicyMatchesGo has such keys that
// verify), or the sign bit of R or A. The verdicts must agree.
func TestDifferentialEd25519(t *testing.T) {
	t.Parallel()
	h := startEd25519Harness(t)
	r := rand.New(rand.NewPCG(8032, 7))
	p := unhxMust("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	kinds := []string{"bit of R", "bit of S", "bit of the key", "bit of the message", "S + L",
		"key y >= p", "sign of R", "sign of the key"}
	counts := make(map[string][2]int)
	for i := range 240 {
		seed := randBytes(r, ed25519.SeedSize)
		key := ed25519.NewKeyFromSeed(seed)
		pub := []byte(key.Public().(ed25519.PublicKey))
		msg := randBytes(r, randLen(r, 400))
		sig := ed25519.Sign(key, msg)
		if !cVerify(h, r.IntN(100), pub, msg, sig) {
			t.Fatalf("iteration %d: valid signature of %d bytes rejected", i, len(msg))
		}
		pub2, msg2, sig2 := bytes.Clone(pub), bytes.Clone(msg), bytes.Clone(sig)
		kind := kinds[i%len(kinds)]
		switch kind {
		case "bit of R":
			sig2[r.IntN(32)] ^= 1 << r.IntN(8)
		case "bit of S":
			sig2[32+r.IntN(32)] ^= 1 << r.IntN(8)
		case "bit of the key":
			pub2[r.IntN(32)] ^= 1 << r.IntN(8)
		case "bit of the message":
			msg2 = append(msg2, 0)
			msg2[r.IntN(len(msg2))] ^= 1 << r.IntN(8)
		case "S + L":
			copy(sig2[32:], addLE(sig[32:], groupOrder))
		case "key y >= p":
			// Only possible when y + p < 2^255, i.e. y < 19: rare; otherwise any y >= p.
			y := bytes.Clone(pub)
			y[31] &= 0x7f
			yp := addLE(y, p)
			if yp[31]&0x80 != 0 {
				yp = bytes.Clone(p)
				yp[0] += byte(r.IntN(19))
			}
			yp[31] |= pub[31] & 0x80
			pub2 = yp
		case "sign of R":
			sig2[31] ^= 0x80
		case "sign of the key":
			pub2[31] ^= 0x80
		}
		goOK := ed25519.Verify(pub2, msg2, sig2)
		if got := cVerify(h, r.IntN(100), pub2, msg2, sig2); got != goOK {
			t.Fatalf("iteration %d, %s: C says %v, crypto/ed25519 says %v (pub %x sig %x msg %x)",
				i, kind, got, goOK, pub2, sig2, msg2)
		}
		c := counts[kind]
		if goOK {
			c[0]++
		} else {
			c[1]++
		}
		counts[kind] = c
	}
	for _, k := range kinds {
		t.Logf("%-20s accepted %d, rejected %d (both sides)", k, counts[k][0], counts[k][1])
		if counts[k][1] == 0 {
			t.Errorf("%s: no tampered signature was rejected", k)
		}
	}
}

func TestDifferentialSHA512(t *testing.T) {
	t.Parallel()
	h := startEd25519Harness(t)
	r := rand.New(rand.NewPCG(1804, 512))
	for i := range 600 {
		msg := randBytes(r, randLen(r, 3000))
		chunk := r.IntN(300) // 0: one update
		want := sha512.Sum512(msg)
		got := unhx(t, h.do("sha512", fmt.Sprint(chunk), hx(msg))[0])
		if !bytes.Equal(got, want[:]) {
			t.Fatalf("iteration %d (%d bytes in chunks of %d): got %x, want %x", i, len(msg), chunk, got, want)
		}
	}
}

// TestEd25519EncodingPolicyMatchesGo pins the decisions of src/fota_ed25519.c's policy on
// crafted inputs that random keys never produce: public keys that are the small-order identity
// (0, 1) or (0, -1), in canonical and non-canonical encodings (y + p; x = 0 with the sign bit
// set), and an R that is a non-canonical encoding of the right point. With A the identity,
// [S]B = R holds for any message when R = [s]B and S = s, so Go accepts those signatures: the C
// verdict must be the same, accept or reject.
func TestEd25519EncodingPolicyMatchesGo(t *testing.T) {
	t.Parallel()
	h := startEd25519Harness(t)
	// s and R = [s]B from an ordinary key: R is its public key, s its clamped secret scalar mod L.
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	R := []byte(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	hs := sha512.Sum512(seed)
	hs[0] &= 248
	hs[31] &= 127
	hs[31] |= 64
	S := reduceLE(hs[:32])
	identity := unhxMust("0100000000000000000000000000000000000000000000000000000000000000")
	identityYP := unhxMust("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // y = p + 1
	identityNeg0 := unhxMust("0100000000000000000000000000000000000000000000000000000000000080")
	minusOne := unhxMust("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // (0, -1), order 2
	zeroR := slices.Clone(identity)                                                          // [0]B
	zeroRYP := slices.Clone(identityYP)
	zeroS := make([]byte, 32)
	for _, c := range []struct {
		name     string
		pub, sig []byte
		goWant   bool // what crypto/ed25519 decides: checked, so the case means what it says
	}{
		{"A = identity", identity, slices.Concat(R, S), true},
		{"A = identity, y encoded as y + p", identityYP, slices.Concat(R, S), true},
		{"A = identity, x = 0 with the sign bit set", identityNeg0, slices.Concat(R, S), true},
		{"A = identity, S + L", identity, slices.Concat(R, addLE(S, groupOrder)), false},
		{"A = identity, S = 0 and R = identity", identity, slices.Concat(zeroR, zeroS), true},
		{"A = identity, S = 0 and R = identity encoded as y + p", identity, slices.Concat(zeroRYP, zeroS), false},
		{"A = identity, S = L and R = identity", identity, slices.Concat(zeroR, groupOrder), false},
	} {
		for _, msg := range [][]byte{nil, []byte("fotagate image v1\x00")} {
			goOK := ed25519.Verify(c.pub, msg, c.sig)
			if goOK != c.goWant {
				t.Fatalf("%s: crypto/ed25519 says %v, the case expects %v", c.name, goOK, c.goWant)
			}
			if got := cVerify(h, 0, c.pub, msg, c.sig); got != goOK {
				t.Errorf("%s, %d-byte message: C says %v, crypto/ed25519 says %v", c.name, len(msg), got, goOK)
			}
		}
	}
	// A = (0, -1) has order 2: [k]A is A or the identity as k is odd or even, so whether
	// R = [S]B passes depends on the message. Both sides must agree on each.
	agreeOK, agreeBad := 0, 0
	for i := range 16 {
		msg := []byte{byte(i)}
		goOK := ed25519.Verify(minusOne, msg, slices.Concat(R, S))
		if got := cVerify(h, 0, minusOne, msg, slices.Concat(R, S)); got != goOK {
			t.Errorf("A = (0, -1), message %x: C says %v, crypto/ed25519 says %v", msg, got, goOK)
		}
		if goOK {
			agreeOK++
		} else {
			agreeBad++
		}
	}
	if agreeOK == 0 || agreeBad == 0 {
		t.Errorf("A = (0, -1): %d accepted, %d rejected of 16; want both verdicts exercised", agreeOK, agreeBad)
	}
}

// reduceLE returns the 32-byte little-endian number b mod L, little-endian.
func reduceLE(b []byte) []byte {
	be := slices.Clone(b)
	slices.Reverse(be)
	l := slices.Clone(groupOrder)
	slices.Reverse(l)
	v := new(big.Int).Mod(new(big.Int).SetBytes(be), new(big.Int).SetBytes(l))
	out := v.FillBytes(make([]byte, 32))
	slices.Reverse(out)
	return out
}
