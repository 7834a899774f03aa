package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// The vector generator. `make vectors` (go generate) runs it with -update; otherwise the test
// checks that the committed file is exactly what this code generates, so vectors can never
// drift from the implementation the C library is tested against.

var update = flag.Bool("update", false, "rewrite testdata/vectors/v1.json")

const vectorPath = "testdata/vectors/v1.json"

// fixedReader returns its bytes and then fails, so a generator never reads hidden randomness.
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, os.ErrClosed
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// pattern returns n deterministic bytes derived from a label.
func pattern(label string, n int) []byte {
	var out []byte
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte(label + string(rune('a'+i))))
		out = append(out, s[:]...)
	}
	return out[:n]
}

type sessionSpec struct {
	name       string
	maxPayload int
	gwMax      int
	imageSize  int
	offset     uint32 // the device's resume point: this many bytes of the image (or of resumeOf)
	resumeOf   string // "other": the resume point names another image; "stale": one with the same ID
	status     byte
	signed     bool
	deviceID   string
	seq        uint32 // offered sequence; the device runs 3
}

func genSession(t *testing.T, s sessionSpec) sessionVector {
	t.Helper()
	var psk [KeySize]byte
	copy(psk[:], pattern("psk "+s.name, KeySize))
	vendor := ed25519.NewKeyFromSeed(pattern("vendor", ed25519.SeedSize))
	ndRandom := pattern("nd "+s.name, NonceSize-4)
	ng := pattern("ng "+s.name, NonceSize)
	img := pattern("image "+s.name, s.imageSize)
	id := s.deviceID
	if id == "" {
		id = "boiler-17"
	}
	dc := &DeviceConfig{DeviceID: id, PSK: psk, Class: "esp8266-4m", Running: 3, MaxPayload: s.maxPayload,
		BootCounter: 41, Rand: &fixedReader{ndRandom}}
	if s.offset > 0 {
		dc.Resume = ResumePoint{Offset: s.offset, Digest: sha256.Sum256(img)}
		switch s.resumeOf {
		case "other":
			dc.Resume.Digest[0] ^= 0x01
		case "stale":
			dc.Resume.Digest[DigestSize-1] ^= 0x01
		}
	}
	gc, err := NewGatewayConfig("gw-plantroom", s.gwMax, &fixedReader{append(pattern("dummy", KeySize), ng...)})
	if err != nil {
		t.Fatal(err)
	}
	offer := &Offer{Status: s.status, RetryAfter: 0}
	if s.status == StatusRetry {
		offer.RetryAfter = 90
	}
	if s.status == StatusOffer {
		seq := s.seq
		if seq == 0 {
			seq = 4
		}
		m := &Manifest{Seq: seq, Size: uint32(len(img)), Class: dc.Class, Digest: sha256.Sum256(img)}
		if s.signed {
			st := m.Statement()
			if m.Signature, err = st.Sign(vendor); err != nil {
				t.Fatal(err)
			}
			m.Signed = true
		}
		offer.Manifest = m
	}

	dh, err := NewDeviceHandshake(dc)
	if err != nil {
		t.Fatal(err)
	}
	hello := append([]byte(nil), dh.Hello()...)
	gh := NewGatewayHandshake(gc)
	if _, err := gh.ReadHello(hello, func(string) ([KeySize]byte, bool) { return psk, true }); err != nil {
		t.Fatal(err)
	}
	offerWire, err := gh.AppendOffer(nil, offer)
	if err != nil {
		t.Fatal(err)
	}
	offerCopy := append([]byte(nil), offerWire...)
	o, err := dh.ReadOffer(offerCopy)
	if err != nil {
		t.Fatal(err)
	}
	code, acceptOffset := byte(CodeDeclined), uint32(0)
	if o.Status == StatusOffer {
		code, acceptOffset = CodeOK, dh.Start()
		if err := dc.Check(o.Manifest); err != nil {
			code, acceptOffset = CodeFor(err), 0
		}
	}
	acceptWire, ds, err := dh.AppendAccept(nil, code, acceptOffset)
	if err != nil {
		t.Fatal(err)
	}
	_, gs, err := gh.ReadAccept(append([]byte(nil), acceptWire...))
	if err != nil && !(code != CodeOK && Reason(err) == CodeName(code)) {
		t.Fatal(err)
	}

	// Recompute every intermediate value from the wire, as PROTOCOL.md 5 defines them.
	gwLen := int(offerWire[HeaderSize+NonceSize])
	prefix := HeaderSize + NonceSize + 1 + gwLen
	th := transcriptHash(hello, offerWire[:prefix])
	th2 := confirmHash(&th, offerWire[prefix:])
	var nd, ngA [NonceSize]byte
	copy(nd[:], ndRandom)
	nd[12], nd[13], nd[14], nd[15] = 0, 0, 0, 41
	copy(ngA[:], ng)
	keys := deriveSessionKeys(&psk, &nd, &ngA, id, gc.GatewayID, &th)
	prk, _ := hkdf.Extract(sha256.New, psk[:], append(nd[:], ng...))
	mk := mac1Key(&psk, id)

	v := sessionVector{
		Name: s.name, PSK: hex.EncodeToString(psk[:]), DeviceID: id, GatewayID: gc.GatewayID,
		Class: dc.Class, Running: dc.Running, MaxPayload: s.maxPayload, GatewayMaxPayload: s.gwMax,
		BootCounter: dc.BootCounter, NdRandom: hex.EncodeToString(ndRandom), Ng: hex.EncodeToString(ng),
		AcceptCode: code, AcceptOffset: acceptOffset, ResumeOffset: dc.Resume.Offset,
		Offer: offerVector{Status: s.status, RetryAfter: offer.RetryAfter},
		Derived: derivedVector{
			Nd: hex.EncodeToString(nd[:]), MAC1Key: hex.EncodeToString(mk[:]),
			TH: hex.EncodeToString(th[:]), TH2: hex.EncodeToString(th2[:]), PRK: hex.EncodeToString(prk),
			G2DKey: hex.EncodeToString(keys.g2d.key[:]), G2DIV: hex.EncodeToString(keys.g2d.iv[:]),
			D2GKey: hex.EncodeToString(keys.d2g.key[:]), D2GIV: hex.EncodeToString(keys.d2g.iv[:]),
		},
		Wire: wireVector{Hello: hex.EncodeToString(hello), Offer: hex.EncodeToString(offerWire), Accept: hex.EncodeToString(acceptWire)},
	}
	if s.signed {
		v.VendorPublicKey = hex.EncodeToString(vendor.Public().(ed25519.PublicKey))
	}
	if dc.Resume.Offset > 0 {
		v.ResumeDigest = hex.EncodeToString(dc.Resume.Digest[:])
	}
	m := o.Manifest // as the device received it, chunk included
	if m == nil {
		return v
	}
	v.Offer.Seq, v.Offer.Size, v.Offer.Chunk, v.Offer.Class = m.Seq, m.Size, m.Chunk, m.Class
	v.Offer.Digest = hex.EncodeToString(m.Digest[:])
	if m.Signed {
		v.Offer.Signature = hex.EncodeToString(m.Signature[:])
	}
	v.Image = hex.EncodeToString(img)
	if gs == nil {
		return v
	}
	for !gs.Done() {
		f, err := gs.AppendFrame(nil, bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		v.Wire.Data = append(v.Wire.Data, hex.EncodeToString(f))
	}
	ack, _ := ds.AppendAck(nil, m.Size)
	rep, _ := ds.AppendReport(nil, CodeOK, m.Size)
	v.Wire.Ack, v.Wire.Report = hex.EncodeToString(ack), hex.EncodeToString(rep)
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genNegative(t *testing.T, sessions []sessionVector) []negativeVector {
	base := sessions[0] // chunk 256, three and a bit frames, signed
	offer, hello, accept := unhex(t, base.Wire.Offer), unhex(t, base.Wire.Hello), unhex(t, base.Wire.Accept)
	data := make([][]byte, len(base.Wire.Data))
	for i, d := range base.Wire.Data {
		data[i] = unhex(t, d)
	}
	cat := func(parts ...[]byte) string { return hex.EncodeToString(bytes.Join(parts, nil)) }
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[(i+len(c))%len(c)] ^= 0x01
		return c
	}
	setLen := func(b []byte, n int) []byte {
		c := append([]byte(nil), b...)
		c[1], c[2] = byte(n>>8), byte(n)
		return c
	}
	all := func(ds [][]byte) []byte { return bytes.Join(ds, nil) }
	other := sessions[1]
	d := "device"
	g := "gateway"
	negs := []negativeVector{
		{Name: "offer ciphertext bit flipped", Role: d, Inbound: cat(flip(offer, -20)), Expect: "bad_record"},
		{Name: "offer tag bit flipped", Role: d, Inbound: cat(flip(offer, -1)), Expect: "bad_record"},
		{Name: "offer gateway nonce bit flipped", Role: d, Inbound: cat(flip(offer, HeaderSize)), Expect: "bad_record"},
		{Name: "offer from another session", Role: d, Inbound: other.Wire.Offer, Expect: "bad_record"},
		{Name: "offer length over limit", Role: d, Inbound: cat(setLen(offer, 0xffff)), Expect: "frame_too_large"},
		{Name: "offer cut short", Role: d, Inbound: cat(offer[:40]), Expect: "truncated"},
		{Name: "reject auth failed", Role: d, Inbound: cat(AppendReject(nil, CodeAuthFailed)), Expect: "auth_failed"},
		{Name: "offer for another class", Role: d, Class: "esp32-c3", Inbound: cat(offer), Expect: "wrong_class"},
		{Name: "data payload bit flipped", Role: d, Inbound: cat(offer, data[0], flip(data[1], 10)), Expect: "bad_record"},
		{Name: "data frame replayed", Role: d, Inbound: cat(offer, data[0], data[1], data[1]), Expect: "bad_record"},
		{Name: "data frames reordered", Role: d, Inbound: cat(offer, data[0], data[2], data[1]), Expect: "bad_record"},
		{Name: "data frame dropped", Role: d, Inbound: cat(offer, data[0], data[2]), Expect: "bad_record"},
		{Name: "stream ends before final", Role: d, Inbound: cat(offer, all(data[:len(data)-1])), Expect: "truncated"},
		{Name: "final relabelled as data", Role: d, Inbound: cat(offer, all(data[:len(data)-1]), func() []byte {
			c := append([]byte(nil), data[len(data)-1]...)
			c[0] = TypeData
			return c
		}()), Expect: "unexpected_message"},
		{Name: "data length over chunk", Role: d, Inbound: cat(offer, setLen(data[0], 256+TagSize+1)), Expect: "frame_too_large"},
		{Name: "data length under chunk", Role: d, Inbound: cat(offer, setLen(data[0][:HeaderSize+100], 97)), Expect: "malformed"},
		{Name: "hello mac1 bit flipped", Role: g, Inbound: cat(flip(hello, -1)), Expect: "auth_failed"},
		{Name: "hello from unknown device", Role: g, Inbound: other.Wire.Hello, Expect: "auth_failed"},
		{Name: "hello version 2", Role: g, Inbound: cat(func() []byte { c := append([]byte(nil), hello...); c[3] = 2; return c }()), Expect: "unsupported_version"},
		{Name: "hello length over limit", Role: g, Inbound: cat(setLen(hello, 300)), Expect: "frame_too_large"},
		{Name: "accept bit flipped", Role: g, Inbound: cat(hello, flip(accept, 4)), Expect: "bad_record"},
		{Name: "accept from another session", Role: g, Inbound: cat(hello, unhex(t, other.Wire.Accept)), Expect: "bad_record"},
		{Name: "ack bit flipped", Role: g, Inbound: cat(hello, accept, flip(unhex(t, base.Wire.Ack), 5)), Expect: "bad_record"},
		{Name: "ack dropped before report", Role: g, Inbound: cat(hello, accept, unhex(t, base.Wire.Report)), Expect: "bad_record"},
	}
	for i := range negs {
		negs[i].Session = base.Name // the gateway knows only this session's device
	}
	// A gateway offering a lower sequence than the device runs: the device refuses.
	for _, s := range sessions {
		if s.Name == "rollback offered" {
			negs = append(negs, negativeVector{Name: "offer is a rollback", Session: s.Name, Role: d, Inbound: s.Wire.Offer, Expect: "rollback"})
		}
	}
	return negs
}

func generateVectors(t *testing.T) []byte {
	specs := []sessionSpec{
		{name: "signed chunk 256", maxPayload: 256, gwMax: 4096, imageSize: 3*256 + 77, signed: true},
		{name: "chunk 64", maxPayload: 64, gwMax: 4096, imageSize: 200, deviceID: "lobby-sensor-3"},
		{name: "chunk 512", maxPayload: 512, gwMax: 4096, imageSize: 1500},
		{name: "chunk 1024 capped by gateway 512", maxPayload: 1024, gwMax: 512, imageSize: 1100},
		{name: "chunk 1024", maxPayload: 1024, gwMax: 4096, imageSize: 2*1024 + 1},
		{name: "chunk 4096", maxPayload: 4096, gwMax: 4096, imageSize: 2*4096 + 300, signed: true},
		{name: "resume at 700 chunk 256", maxPayload: 256, gwMax: 4096, imageSize: 1000, offset: 700},
		{name: "resume with nothing left", maxPayload: 256, gwMax: 4096, imageSize: 1000, offset: 1000},
		{name: "resume point for another image", maxPayload: 256, gwMax: 4096, imageSize: 1000, offset: 700, resumeOf: "other"},
		{name: "resume point with the offered ID but another digest", maxPayload: 256, gwMax: 4096, imageSize: 1000, offset: 700, resumeOf: "stale"},
		{name: "image of one byte", maxPayload: 64, gwMax: 4096, imageSize: 1},
		{name: "rollback offered", maxPayload: 512, gwMax: 4096, imageSize: 100, seq: 2},
		{name: "up to date", maxPayload: 512, gwMax: 4096, status: StatusUpToDate},
		{name: "retry later", maxPayload: 512, gwMax: 4096, status: StatusRetry},
	}
	f := vectorFile{Comment: "fotagate device protocol v1 test vectors; see README.md beside this file and protocol/PROTOCOL.md. Generated by `make vectors`; do not edit."}
	for _, s := range specs {
		f.Sessions = append(f.Sessions, genSession(t, s))
	}
	f.Negative = genNegative(t, f.Sessions)
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestVectorsAreGenerated(t *testing.T) {
	got := generateVectors(t)
	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatalf("%v (run `make vectors`)", err)
	}
	if !bytes.Equal(got, committed) {
		t.Fatalf("%s differs from what the generator produces: run `make vectors` and review the diff", vectorPath)
	}
}
