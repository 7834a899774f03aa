//go:build ignore

// Command seeds writes the fuzzers' committed seed corpus and offer.inc from
// protocol/testdata/vectors/v1.json (run from this directory: go run seeds.go).
// Deterministic: running it again gives the same files; fuzz_test.go checks the
// committed ones against a fresh run (-dir writes elsewhere, -vectors reads elsewhere).
// corpus/signed is for the sealed target built with FOTA_WITH_ED25519.
//
// The layouts are those fuzz_device.c reads: byte 0 is the split count
// (0: feed whole; bit 3: erase ahead), then for corpus/sealed a flags byte and plaintext records
// "type u8 | length u16 | plaintext".
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

type session struct {
	Name      string `json:"name"`
	Class     string `json:"class"`
	Image     string `json:"image"`
	VendorKey string `json:"vendor_public_key"`
	Derived   struct {
		TH     string `json:"th"`
		G2DKey string `json:"g2d_key"`
		G2DIV  string `json:"g2d_iv"`
	} `json:"derived"`
	Wire struct {
		Offer string   `json:"offer"`
		Data  []string `json:"data"`
	} `json:"wire"`
}

type negative struct {
	Name    string `json:"name"`
	Session string `json:"session"`
	Role    string `json:"role"`
	Inbound string `json:"inbound"`
}

// The harness's resume image (fuzz_device.c resume_byte, RESUME_*).
const (
	resumeSize    = 9000
	resumeSeq     = 4
	resumeDurable = 4096 + 1000
)

func resumeImage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint32(i)*7 + uint32(i)>>8)
	}
	return b
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

var outDir = flag.String("dir", ".", "where corpus/ and offer.inc go")

func write(dir, name string, parts ...[]byte) {
	dir = filepath.Join(*outDir, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), bytes.Join(parts, nil), 0o644); err != nil {
		log.Fatal(err)
	}
}

func record(typ byte, pt []byte) []byte {
	return append([]byte{typ, byte(len(pt) >> 8), byte(len(pt))}, pt...)
}

func manifest(seq, size uint32, chunk uint16, class string, digest []byte) []byte {
	m := []byte{0x00}
	m = binary.BigEndian.AppendUint32(m, seq)
	m = binary.BigEndian.AppendUint32(m, size)
	m = binary.BigEndian.AppendUint16(m, chunk)
	m = append(m, byte(len(class)))
	m = append(m, class...)
	m = append(m, digest...)
	return append(m, 0x00) // unsigned: this build holds no vendor keys
}

// stream is the records of an image sent from offset in chunks.
func stream(img []byte, offset, chunk int) [][]byte {
	var out [][]byte
	for len(img)-offset > chunk {
		out = append(out, record(0x04, img[offset:offset+chunk]))
		offset += chunk
	}
	return append(out, record(0x05, img[offset:]))
}

func main() {
	vectors := flag.String("vectors", "../../../protocol/testdata/vectors/v1.json", "the vectors")
	flag.Parse()
	raw, err := os.ReadFile(*vectors)
	if err != nil {
		log.Fatal(err)
	}
	var v struct {
		Sessions []session  `json:"sessions"`
		Negative []negative `json:"negative"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	s := v.Sessions[0] // the harness's device is this session's
	offer := unhex(s.Wire.Offer)
	var data []byte
	for _, d := range s.Wire.Data {
		data = append(data, unhex(d)...)
	}
	none := []byte{0}

	// offer.inc: the Offer FUZZ_SESSION completes the handshake with.
	var inc strings.Builder
	fmt.Fprintf(&inc, "/* %s: sessions[0].wire.offer of v1.json, written by seeds.go */\n", s.Name)
	for i, b := range offer {
		fmt.Fprintf(&inc, "0x%02x,", b)
		if i%16 == 15 || i == len(offer)-1 {
			inc.WriteString("\n")
		}
	}
	if err := os.WriteFile(filepath.Join(*outDir, "offer.inc"), []byte(inc.String()), 0o644); err != nil {
		log.Fatal(err)
	}

	// vendor_key.inc: the key that signed it, for the signed target.
	key := unhex(s.VendorKey)
	inc.Reset()
	fmt.Fprintf(&inc, "/* %s: sessions[0].vendor_public_key of v1.json, written by seeds.go */\n", s.Name)
	for i, b := range key {
		fmt.Fprintf(&inc, "0x%02x,", b)
		if i%16 == 15 || i == len(key)-1 {
			inc.WriteString("\n")
		}
	}
	if err := os.WriteFile(filepath.Join(*outDir, "vendor_key.inc"), []byte(inc.String()), 0o644); err != nil {
		log.Fatal(err)
	}

	// Raw: the whole inbound transcript, pieces of it, and the device-role
	// negative vectors of this session.
	write("corpus/raw", "transcript", none, offer, data)
	write("corpus/raw", "transcript-split", []byte{3, 0, 6, 200}, offer, data)
	write("corpus/raw", "transcript-erase-ahead", []byte{0x08 | 3, 0, 6, 200}, offer, data)
	write("corpus/raw", "offer", none, offer)
	write("corpus/raw", "reject", none, []byte{0x09, 0x00, 0x01, 0x01})
	// Session: what follows the Offer.
	write("corpus/session", "stream", none, data)
	write("corpus/session", "stream-split", []byte{2, 2, 99}, data)
	write("corpus/session", "alert", none, []byte{0x08, 0x00, 0x11}, make([]byte, 17))
	for i, n := range v.Negative {
		if n.Role != "device" || n.Session != s.Name {
			continue
		}
		in := unhex(n.Inbound)
		write("corpus/raw", fmt.Sprintf("negative-%02d", i), none, in)
		if rest, ok := bytes.CutPrefix(in, offer); ok && len(rest) > 0 {
			write("corpus/session", fmt.Sprintf("negative-%02d", i), none, rest)
		}
	}

	// Sealed: the session's Offer plaintext and image, opened with its keys.
	aead, err := chacha20poly1305.New(unhex(s.Derived.G2DKey))
	if err != nil {
		log.Fatal(err)
	}
	clear := 3 + 16 + 1 + int(offer[3+16])
	ad := append(append([]byte{}, offer[:3]...), unhex(s.Derived.TH)...)
	offerPT, err := aead.Open(nil, unhex(s.Derived.G2DIV), offer[clear:], ad) // counter 0: the IV
	if err != nil {
		log.Fatalf("opening the vector's offer: %v", err)
	}
	img := unhex(s.Image)
	var recs [][]byte
	recs = append(recs, record(0x02, offerPT))
	recs = append(recs, stream(img, 0, 256)...)
	write("corpus/sealed", "vector-session", append([][]byte{{0, 0}}, recs...)...)
	write("corpus/sealed", "vector-session-split", append([][]byte{{1, 16, 0}}, recs...)...)
	write("corpus/sealed", "declined", append([][]byte{{0, 1}}, recs[:1]...)...)
	write("corpus/sealed", "up-to-date", []byte{0, 0}, record(0x02, []byte{0x01}))
	write("corpus/sealed", "retry", []byte{0, 0}, record(0x02, []byte{0x02, 0x00, 0x3c}))
	write("corpus/sealed", "alert", []byte{0, 0}, record(0x02, offerPT), record(0x08, []byte{0x0b}))

	// Signed (the sealed target with FOTA_WITH_ED25519 and the vendor's key): the session's
	// signed manifest, the same with a bit of the signature's S flipped, and unsigned.
	write("corpus/signed", "vector-session", append([][]byte{{0, 0}}, recs...)...)
	flipped := bytes.Clone(offerPT)
	flipped[len(flipped)-1] ^= 0x01
	write("corpus/signed", "signature-flipped", []byte{0, 0}, record(0x02, flipped))
	unsigned := append(bytes.Clone(offerPT[:len(offerPT)-65]), 0x00)
	write("corpus/signed", "unsigned", []byte{0, 0}, record(0x02, unsigned))

	// Resume of the harness's own image from its durable offset, and the
	// same image fresh in 4 KiB chunks (durable points in every sector).
	rimg := resumeImage(resumeSize)
	digest := sha256.Sum256(rimg)
	m := manifest(resumeSeq, resumeSize, 512, s.Class, digest[:])
	write("corpus/sealed", "resume", append([][]byte{{0, 2}, record(0x02, m)}, stream(rimg, resumeDurable, 512)...)...)
	// An image with the resume point's ID but another digest: declined, the point forgotten.
	stale := bytes.Clone(digest[:])
	stale[len(stale)-1] ^= 0x01
	write("corpus/sealed", "resume-stale", []byte{0, 2}, record(0x02, manifest(resumeSeq, resumeSize, 512, s.Class, stale)))
	m = manifest(resumeSeq+1, resumeSize, 4096, s.Class, digest[:])
	write("corpus/sealed", "chunk-4096", append([][]byte{{0, 0}, record(0x02, m)}, stream(rimg, 0, 4096)...)...)
	// The same, with a flash or state callback failing (flags bits 2-4: which, 5-7: when).
	const opWrite, opRead, opSave = 2, 3, 6
	for _, f := range []struct {
		name    string
		op, nth byte
	}{{"fail-write-2", opWrite, 2}, {"fail-read-1", opRead, 1}, {"fail-save-3", opSave, 3}} {
		write("corpus/sealed", f.name, append([][]byte{{0, f.op<<2 | (f.nth-1)<<5}, record(0x02, m)}, stream(rimg, 0, 4096)...)...)
	}
	// A chunk that is no multiple of 4: the image crosses words between frames.
	m = manifest(resumeSeq, resumeSize, 77, s.Class, digest[:])
	write("corpus/sealed", "chunk-77", append([][]byte{{0, 0}, record(0x02, m)}, stream(rimg, 0, 77)...)...)
	// The application erasing ahead whenever the library waits (byte 0 bit 3).
	write("corpus/sealed", "chunk-77-erase-ahead", append([][]byte{{0x08, 0}, record(0x02, m)}, stream(rimg, 0, 77)...)...)
}
