package protocol_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/fotagate/fotagate/protocol"
)

// Fuzz targets for every decoder a peer reaches: the frame reader, the Hello, the Offer (its
// clear part and, behind a valid tag, its plaintext), the Accept and both directions of the
// data stream. Each target replays a real session of testdata/vectors/v1.json, so its seeds
// (testdata/fuzz/FuzzXxx/seed-*, written by TestFuzzSeedsMatchVectors -update-fuzz-seeds)
// authenticate and the fuzzer explores the accepting paths as well as the refusals.
//
// Beyond "never panics", every target checks the security claims of the decoder it attacks:
// nothing but the genuine frame authenticates, an error moves no state, every error wraps one
// of the package's sentinels, and whatever is accepted re-encodes to the bytes it came from.
//
//	make fuzz FUZZTIME=30s

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/*/seed-* from testdata/vectors/v1.json")

// hexBytes is a byte string spelled in lower-case hex in the vector file.
type hexBytes []byte

func (h *hexBytes) UnmarshalText(s []byte) error {
	b, err := hex.DecodeString(string(s))
	*h = b
	return err
}

// vecSession is the part of a v1.json session the fuzz targets replay.
type vecSession struct {
	Name              string   `json:"name"`
	PSK               hexBytes `json:"psk"`
	DeviceID          string   `json:"device_id"`
	GatewayID         string   `json:"gateway_id"`
	Class             string   `json:"class"`
	Running           uint32   `json:"running_seq"`
	MaxPayload        int      `json:"max_payload"`
	GatewayMaxPayload int      `json:"gateway_max_payload"`
	BootCounter       uint32   `json:"boot_counter"`
	NdRandom          hexBytes `json:"nd_random"`
	Ng                hexBytes `json:"ng"`
	ResumeOffset      uint32   `json:"resume_offset"`
	ResumeDigest      hexBytes `json:"resume_sha256"`
	Offer             struct {
		Status     byte     `json:"status"`
		Seq        uint32   `json:"seq"`
		Size       uint32   `json:"size"`
		Chunk      uint16   `json:"chunk"`
		Class      string   `json:"class"`
		Digest     hexBytes `json:"sha256"`
		Signature  hexBytes `json:"signature"`
		RetryAfter uint16   `json:"retry_after"`
	} `json:"offer"`
	AcceptCode   byte     `json:"accept_code"`
	AcceptOffset uint32   `json:"accept_offset"`
	Image        hexBytes `json:"image"`
	Wire         struct {
		Hello  hexBytes   `json:"hello"`
		Offer  hexBytes   `json:"offer"`
		Accept hexBytes   `json:"accept"`
		Data   []hexBytes `json:"data"`
		Ack    hexBytes   `json:"ack"`
		Report hexBytes   `json:"report"`
	} `json:"wire"`
}

type vecNegative struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Inbound hexBytes `json:"inbound"`
}

// fuzzVectors is v1.json with the views the targets need, loaded once per test binary.
type fuzzVectors struct {
	Sessions []vecSession  `json:"sessions"`
	Negative []vecNegative `json:"negative"`
	// data is the sessions that go on to a data stream, in file order.
	data []*vecSession
	// offers maps each distinct Hello to every genuine Offer made for it: the only frames a
	// device that sent that Hello may accept.
	offers map[string][][]byte
}

var loadedVectors *fuzzVectors

func vectors(tb testing.TB) *fuzzVectors {
	tb.Helper()
	if loadedVectors != nil {
		return loadedVectors
	}
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", "v1.json"))
	if err != nil {
		tb.Fatal(err)
	}
	v := &fuzzVectors{offers: map[string][][]byte{}}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatal(err)
	}
	for i := range v.Sessions {
		s := &v.Sessions[i]
		if s.Offer.Status == protocol.StatusOffer && s.AcceptCode == protocol.CodeOK {
			v.data = append(v.data, s)
		}
		v.offers[string(s.Wire.Hello)] = append(v.offers[string(s.Wire.Hello)], s.Wire.Offer)
	}
	if len(v.Sessions) == 0 || len(v.data) == 0 {
		tb.Fatal("vector file has no sessions")
	}
	loadedVectors = v
	return v
}

func (v *fuzzVectors) session(i uint8) *vecSession { return &v.Sessions[int(i)%len(v.Sessions)] }
func (v *fuzzVectors) dataSession(i uint8) *vecSession {
	return v.data[int(i)%len(v.data)]
}

// lookup knows every device of the vector file, with the key of its first session: each
// session provisions a key of its own, so only those first sessions' Hellos verify.
func (v *fuzzVectors) lookup(id string) (psk [protocol.KeySize]byte, ok bool) {
	for i := range v.Sessions {
		if v.Sessions[i].DeviceID == id {
			return [protocol.KeySize]byte(v.Sessions[i].PSK), true
		}
	}
	return psk, false
}

// lookup knows the session's device only.
func (s *vecSession) lookup(id string) (psk [protocol.KeySize]byte, ok bool) {
	if id != s.DeviceID {
		return psk, false
	}
	return [protocol.KeySize]byte(s.PSK), true
}

func (s *vecSession) deviceConfig() *protocol.DeviceConfig {
	c := &protocol.DeviceConfig{
		DeviceID: s.DeviceID, PSK: [protocol.KeySize]byte(s.PSK), Class: s.Class, Running: s.Running,
		MaxPayload: s.MaxPayload, BootCounter: s.BootCounter, Rand: bytes.NewReader(s.NdRandom),
	}
	if s.ResumeOffset > 0 {
		c.Resume = protocol.ResumePoint{Offset: s.ResumeOffset, Digest: [protocol.DigestSize]byte(s.ResumeDigest)}
	}
	return c
}

// gatewayConfig draws an all-zero dummy key and then the session's Ng, as the generator did.
func (s *vecSession) gatewayConfig(tb testing.TB) *protocol.GatewayConfig {
	tb.Helper()
	rnd := bytes.NewReader(append(make([]byte, protocol.KeySize), s.Ng...))
	c, err := protocol.NewGatewayConfig(s.GatewayID, s.GatewayMaxPayload, rnd)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func (s *vecSession) manifest() *protocol.Manifest {
	m := &protocol.Manifest{Seq: s.Offer.Seq, Size: s.Offer.Size, Chunk: s.Offer.Chunk, Class: s.Offer.Class,
		Digest: [protocol.DigestSize]byte(s.Offer.Digest)}
	if len(s.Offer.Signature) > 0 {
		m.Signed, m.Signature = true, [protocol.SignatureSize]byte(s.Offer.Signature)
	}
	return m
}

func (s *vecSession) offer() *protocol.Offer {
	o := &protocol.Offer{Status: s.Offer.Status, RetryAfter: s.Offer.RetryAfter}
	if o.Status == protocol.StatusOffer {
		o.Manifest = s.manifest()
		o.Manifest.Chunk = 0 // the gateway sets it
	}
	return o
}

// offerPlain is the sealed content of the session's Offer.
func (s *vecSession) offerPlain(tb testing.TB) []byte {
	tb.Helper()
	p := []byte{s.Offer.Status}
	switch s.Offer.Status {
	case protocol.StatusOffer:
		var err error
		if p, err = s.manifest().Append(p); err != nil {
			tb.Fatal(err)
		}
	case protocol.StatusRetry:
		p = binary.BigEndian.AppendUint16(p, s.Offer.RetryAfter)
	}
	return p
}

func (s *vecSession) deviceHandshake(tb testing.TB) *protocol.DeviceHandshake {
	tb.Helper()
	dh, err := protocol.NewDeviceHandshake(s.deviceConfig())
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(dh.Hello(), s.Wire.Hello) {
		tb.Fatalf("%s: device Hello differs from the vector", s.Name)
	}
	return dh
}

// deviceSession replays the device side of the handshake up to the data stream.
func (s *vecSession) deviceSession(tb testing.TB) *protocol.DeviceSession {
	tb.Helper()
	dh := s.deviceHandshake(tb)
	if _, err := dh.ReadOffer(bytes.Clone(s.Wire.Offer)); err != nil {
		tb.Fatalf("%s: %v", s.Name, err)
	}
	_, ds, err := dh.AppendAccept(nil, s.AcceptCode, s.AcceptOffset)
	if err != nil || ds == nil {
		tb.Fatalf("%s: no data session: %v", s.Name, err)
	}
	return ds
}

// gatewayAfterOffer replays the gateway side up to the Offer it sent.
func (s *vecSession) gatewayAfterOffer(tb testing.TB) *protocol.GatewayHandshake {
	tb.Helper()
	gh := protocol.NewGatewayHandshake(s.gatewayConfig(tb))
	if _, err := gh.ReadHello(s.Wire.Hello, s.lookup); err != nil {
		tb.Fatalf("%s: %v", s.Name, err)
	}
	o, err := gh.AppendOffer(nil, s.offer())
	if err != nil || !bytes.Equal(o, s.Wire.Offer) {
		tb.Fatalf("%s: gateway Offer differs from the vector: %v", s.Name, err)
	}
	return gh
}

// splitFrames cuts a fuzzed stream where its headers say, without judging them: every byte
// reaches the decoder, the last frame may be short of its header's length.
func splitFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := len(b)
		if n >= protocol.HeaderSize {
			n = min(n, protocol.HeaderSize+int(binary.BigEndian.Uint16(b[1:3])))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// checkSentinel fails when err wraps none of the package's errors (errors.go: every error
// returned wraps one, so callers can act on it).
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	if err != nil && protocol.Reason(err) == "other" {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
}

// limitedReader hands out at most step bytes per Read (any number when step is 0), so frame
// reads straddle short reads as they do on a socket.
type limitedReader struct {
	r    *bytes.Reader
	step int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.step > 0 && len(p) > l.step {
		p = p[:l.step]
	}
	return l.r.Read(p)
}

// FuzzReadFrame: ReadFrame never returns more than its limit and buffer allow, reads no body
// byte of a frame it refuses, and fails exactly when the stream says it must.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, limit int, bufSize uint16, step uint8) {
		buf := make([]byte, bufSize)
		src := bytes.NewReader(stream)
		r := &limitedReader{r: src, step: int(step)}
		for {
			pos := len(stream) - src.Len()
			rest := stream[pos:]
			frame, err := protocol.ReadFrame(r, buf, limit)
			read := len(stream) - src.Len() - pos
			if err == nil {
				if len(frame) < protocol.HeaderSize || len(frame) > len(buf) || len(frame)-protocol.HeaderSize > limit {
					t.Fatalf("frame of %d bytes, buffer %d, limit %d", len(frame), len(buf), limit)
				}
				if &frame[0] != &buf[0] {
					t.Fatal("frame does not start the buffer")
				}
				if int(binary.BigEndian.Uint16(frame[1:3])) != len(frame)-protocol.HeaderSize {
					t.Fatal("frame length differs from its header")
				}
				if read != len(frame) || !bytes.Equal(frame, rest[:len(frame)]) {
					t.Fatalf("frame of %d bytes after reading %d is not the stream's", len(frame), read)
				}
				continue
			}
			switch {
			case len(buf) < protocol.HeaderSize:
				if read != 0 {
					t.Fatalf("read %d bytes into a %d-byte buffer", read, len(buf))
				}
			case err == io.EOF:
				if len(rest) != 0 {
					t.Fatalf("io.EOF with %d bytes left", len(rest))
				}
			case errors.Is(err, protocol.ErrFrameTooLarge):
				n := int(binary.BigEndian.Uint16(rest[1:3]))
				if n <= limit && protocol.HeaderSize+n <= len(buf) {
					t.Fatalf("body of %d bytes refused with limit %d, buffer %d: %v", n, limit, len(buf), err)
				}
				if read != protocol.HeaderSize {
					t.Fatalf("read %d bytes of a refused frame, want the header only", read)
				}
			case errors.Is(err, protocol.ErrTruncated):
				if len(rest) == 0 || len(rest) >= protocol.HeaderSize && len(rest) >= protocol.HeaderSize+int(binary.BigEndian.Uint16(rest[1:3])) {
					t.Fatalf("%d bytes left, yet truncated: %v", len(rest), err)
				}
			default:
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
	})
}

// FuzzParseHello: ParseHello re-encodes whatever it accepts byte for byte, and the gateway
// accepts nothing but a genuine Hello of a known device.
func FuzzParseHello(f *testing.F) {
	v := vectors(f)
	genuine := map[string]bool{}
	for _, s := range v.Sessions {
		if psk, _ := v.lookup(s.DeviceID); bytes.Equal(psk[:], s.PSK) {
			genuine[string(s.Wire.Hello)] = true
		}
	}
	if len(genuine) == 0 {
		f.Fatal("no Hello verifies")
	}
	gc := v.Sessions[0].gatewayConfig(f) // ReadHello only reads its dummy key
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := protocol.ParseHello(frame)
		checkSentinel(t, err)
		switch {
		case err == nil:
			if enc := m.Append(nil); !bytes.Equal(enc, frame) {
				t.Fatalf("Hello re-encodes to %x", enc)
			}
			if protocol.CheckDeviceID(m.DeviceID) != nil || m.MaxPayload < protocol.MinPayload || m.MaxPayload > protocol.MaxPayload {
				t.Fatalf("accepted an invalid Hello: %+v", m)
			}
		case m != nil && !errors.Is(err, protocol.ErrUnsupportedVersion) && !errors.Is(err, protocol.ErrUnsupportedSuite):
			t.Fatalf("Hello returned with %v", err)
		}

		gh := protocol.NewGatewayHandshake(gc)
		h, gerr := gh.ReadHello(frame, v.lookup)
		checkSentinel(t, gerr)
		if (gerr == nil) != genuine[string(frame)] {
			t.Fatalf("gateway: %v for a Hello that is genuine=%v", gerr, genuine[string(frame)])
		}
		if err != nil && protocol.Reason(gerr) != protocol.Reason(err) {
			t.Fatalf("gateway says %v, parser %v", gerr, err)
		}
		if gerr == nil && !bytes.Equal(h.Append(nil), frame) {
			t.Fatal("accepted Hello re-encodes differently")
		}
	})
}

// FuzzDeviceReadOffer: after a real Hello, the device accepts nothing but an Offer the
// gateway made for that Hello; a Reject comes back unauthenticated.
func FuzzDeviceReadOffer(f *testing.F) {
	v := vectors(f)
	f.Fuzz(func(t *testing.T, sess uint8, frame []byte) {
		s := v.session(sess)
		dh := s.deviceHandshake(t)
		genuine := slices.ContainsFunc(v.offers[string(s.Wire.Hello)], func(o []byte) bool { return bytes.Equal(o, frame) })
		o, err := dh.ReadOffer(bytes.Clone(frame)) // decrypts in place
		checkSentinel(t, err)
		if (err == nil) != genuine {
			t.Fatalf("%s: %v for an Offer that is genuine=%v", s.Name, err, genuine)
		}
		if err == nil && o.GatewayID != s.GatewayID {
			t.Fatalf("Offer from %q", o.GatewayID)
		}
		var pe *protocol.PeerError
		if errors.As(err, &pe) && (pe.Authenticated || !bytes.HasPrefix(frame, []byte{protocol.TypeReject})) {
			t.Fatalf("peer error %v from %x", err, frame)
		}
	})
}

// sealOffer seals plain as the Offer a gateway with s's configuration and nonce sends in
// answer to hello. It follows the key schedule of PROTOCOL.md 5.2 with no help from the
// package, so arbitrary plaintexts reach the device's offer parser behind a valid tag (and a
// second implementation checks the first: the seeds must reproduce the vectors' Offers).
func sealOffer(s *vecSession, hello, plain []byte) ([]byte, error) {
	gw := s.GatewayID
	bodyLen := protocol.NonceSize + 1 + len(gw) + len(plain) + protocol.TagSize
	if bodyLen > 0xffff {
		return nil, fmt.Errorf("offer body of %d bytes", bodyLen)
	}
	frame := []byte{protocol.TypeOffer, byte(bodyLen >> 8), byte(bodyLen)}
	frame = append(frame, s.Ng...)
	frame = append(frame, byte(len(gw)))
	frame = append(frame, gw...)
	th := sha256.Sum256(append(bytes.Clone(hello), frame...))
	nd := hello[protocol.HeaderSize+3+len(s.DeviceID):][:protocol.NonceSize]
	prk, err := hkdf.Extract(sha256.New, s.PSK, append(bytes.Clone(nd), s.Ng...))
	if err != nil {
		return nil, err
	}
	info := append([]byte("fotagate v1 g2d"), protocol.Version1, protocol.SuiteChaChaPoly, byte(len(s.DeviceID)))
	info = append(info, s.DeviceID...)
	info = append(info, byte(len(gw)))
	info = append(info, gw...)
	info = append(info, th[:]...)
	okm, err := hkdf.Expand(sha256.New, prk, string(info), protocol.KeySize+protocol.IVSize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(okm[:protocol.KeySize])
	if err != nil {
		return nil, err
	}
	// Record counter 0: the nonce is the IV itself.
	aad := append(bytes.Clone(frame[:protocol.HeaderSize]), th[:]...)
	return aead.Seal(frame, okm[protocol.KeySize:], plain, aad), nil
}

// FuzzDeviceOfferPlaintext: arbitrary plaintext sealed under the session's real keys. The
// device never panics on what an authenticated gateway sends, re-encodes every offer it
// accepts to the same plaintext, and can answer it.
func FuzzDeviceOfferPlaintext(f *testing.F) {
	s := &vectors(f).Sessions[0]
	if o, err := sealOffer(s, s.Wire.Hello, s.offerPlain(f)); err != nil || !bytes.Equal(o, s.Wire.Offer) {
		f.Fatalf("the test's Offer sealer does not reproduce %q: %v", s.Name, err)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		frame, err := sealOffer(s, s.Wire.Hello, plain)
		if err != nil {
			return // longer than a frame can say
		}
		dh := s.deviceHandshake(t)
		o, err := dh.ReadOffer(frame)
		checkSentinel(t, err)
		if err != nil {
			return
		}
		enc := []byte{o.Status}
		switch o.Status {
		case protocol.StatusOffer:
			if enc, err = o.Manifest.Append(enc); err != nil {
				t.Fatalf("accepted manifest does not encode: %v", err)
			}
		case protocol.StatusRetry:
			enc = binary.BigEndian.AppendUint16(enc, o.RetryAfter)
		case protocol.StatusUpToDate:
		default:
			t.Fatalf("accepted status %d", o.Status)
		}
		if !bytes.Equal(enc, plain) {
			t.Fatalf("offer re-encodes to %x, was %x", enc, plain)
		}
		if o.Status == protocol.StatusOffer {
			_ = s.deviceConfig().Check(o.Manifest)
			start := dh.Start()
			if start != 0 && (start != s.ResumeOffset || start > o.Manifest.Size) {
				t.Fatalf("stream would start at %d: the device resumes from %d of %d bytes", start, s.ResumeOffset, o.Manifest.Size)
			}
			if _, _, err := dh.AppendAccept(nil, protocol.CodeOK, start+1); err == nil {
				t.Fatal("took the offer at an offset the gateway does not stream from")
			}
			_, ds, err := dh.AppendAccept(nil, protocol.CodeOK, start)
			if err != nil || ds == nil || *ds.Manifest() != *o.Manifest || ds.Offset() != start {
				t.Fatalf("cannot take the offer: %v", err)
			}
			return
		}
		if _, _, err := dh.AppendAccept(nil, protocol.CodeOK, 0); err == nil {
			t.Fatal("took an offer with no image")
		}
		if _, ds, err := dh.AppendAccept(nil, protocol.CodeDeclined, 0); err != nil || ds != nil {
			t.Fatalf("cannot decline: %v", err)
		}
	})
}

// FuzzDeviceOpenData: a stream of frames into a real data session. Only the gateway's frames,
// in order, open, and they yield the image at the device's offset; a refused frame moves
// nothing, so the genuine frame after it still opens.
func FuzzDeviceOpenData(f *testing.F) {
	v := vectors(f)
	f.Fuzz(func(t *testing.T, sess uint8, stream []byte) {
		s := v.dataSession(sess)
		ds := s.deviceSession(t)
		chunk := uint32(ds.Manifest().Chunk)
		for _, frame := range splitFrames(stream) {
			off, done := ds.Offset(), ds.Done()
			i := int((off - s.AcceptOffset) / chunk) // the gateway's frame for this offset
			genuine := !done && bytes.Equal(frame, s.Wire.Data[i])
			p, final, err := ds.OpenData(bytes.Clone(frame)) // decrypts in place
			checkSentinel(t, err)
			if genuine && err != nil {
				t.Fatalf("the gateway's frame for offset %d refused: %v", off, err)
			}
			if err != nil {
				if ds.Offset() != off || ds.Done() != done {
					t.Fatalf("refused frame moved the session from %d/%v to %d/%v: %v", off, done, ds.Offset(), ds.Done(), err)
				}
				var pe *protocol.PeerError
				if errors.As(err, &pe) {
					t.Fatalf("accepted an Alert the gateway never sent: %v", err)
				}
				continue
			}
			if !genuine {
				t.Fatalf("opened a frame at offset %d that the gateway never sent: %x", off, frame)
			}
			if !bytes.Equal(p, s.Image[off:off+uint32(len(p))]) || ds.Offset() != off+uint32(len(p)) {
				t.Fatalf("frame at offset %d yields %d bytes that are not the image's", off, len(p))
			}
			if final != (ds.Offset() == s.Offer.Size) || final != ds.Done() {
				t.Fatalf("final=%v at offset %d of %d", final, ds.Offset(), s.Offer.Size)
			}
		}
	})
}

// FuzzGatewayReadDeviceFrame: a stream of frames from the device after the gateway sealed
// the first send frames. Only the device's genuine Ack and Report open; offsets stay between
// the acknowledged and the sent; a refused frame leaves the acknowledged offset alone.
func FuzzGatewayReadDeviceFrame(f *testing.F) {
	v := vectors(f)
	f.Fuzz(func(t *testing.T, sess, send uint8, stream []byte) {
		s := v.dataSession(sess)
		gh := s.gatewayAfterOffer(t)
		_, gs, err := gh.ReadAccept(bytes.Clone(s.Wire.Accept))
		if err != nil || gs == nil {
			t.Fatalf("%s: no data session: %v", s.Name, err)
		}
		img := bytes.NewReader(s.Image)
		buf := make([]byte, 0, protocol.HeaderSize+protocol.MaxPayload+protocol.TagSize)
		sent := s.AcceptOffset
		for range send {
			if gs.Done() {
				break
			}
			out, err := gs.AppendFrame(buf[:0], img)
			if err != nil {
				t.Fatal(err)
			}
			sent += uint32(len(out) - protocol.DataOverhead)
		}
		// The device sealed its Ack and then its Report: the only frames that authenticate,
		// in that order. An authenticated frame comes back with its type even when its offset
		// is refused.
		deviceSent := [][]byte{s.Wire.Ack, s.Wire.Report}
		next := 0
		for _, frame := range splitFrames(stream) {
			acked := gs.Acked()
			genuine := next < len(deviceSent) && bytes.Equal(frame, deviceSent[next])
			msg, err := gs.ReadDeviceFrame(bytes.Clone(frame)) // decrypts in place
			checkSentinel(t, err)
			if authenticated := msg.Type != 0; authenticated != genuine {
				t.Fatalf("%s (%v) from a frame that is the device's next=%v: %x", protocol.TypeName(msg.Type), err, genuine, frame)
			}
			if genuine {
				next++
			}
			if err != nil {
				if gs.Acked() != acked {
					t.Fatalf("refused frame moved the acknowledged offset from %d to %d: %v", acked, gs.Acked(), err)
				}
				if genuine != (msg.Offset > sent) {
					t.Fatalf("%s at offset %d refused with sent %d: %v", protocol.TypeName(msg.Type), msg.Offset, sent, err)
				}
				continue
			}
			if msg.Type != frame[0] || msg.Offset < acked || msg.Offset > sent || gs.Acked() != msg.Offset {
				t.Fatalf("%s at offset %d accepted with acked %d, sent %d", protocol.TypeName(msg.Type), msg.Offset, acked, sent)
			}
		}
	})
}

// FuzzReadAccept: after a real Offer, the gateway opens nothing but the device's genuine
// Accept, and returns its code, offset and session as the vector says.
func FuzzReadAccept(f *testing.F) {
	v := vectors(f)
	f.Fuzz(func(t *testing.T, sess uint8, frame []byte) {
		s := v.session(sess)
		gh := s.gatewayAfterOffer(t)
		a, gs, err := gh.ReadAccept(bytes.Clone(frame)) // decrypts in place
		checkSentinel(t, err)
		genuine := bytes.Equal(frame, s.Wire.Accept)
		if (a != nil) != genuine {
			t.Fatalf("%s: Accept %+v (%v) from a frame that is genuine=%v", s.Name, a, err, genuine)
		}
		if !genuine {
			var pe *protocol.PeerError
			if gs != nil || err == nil || errors.As(err, &pe) {
				t.Fatalf("forged Accept had effect: session %v, %v", gs != nil, err)
			}
			return
		}
		taken := s.Offer.Status == protocol.StatusOffer && s.AcceptCode == protocol.CodeOK
		if a.Code != s.AcceptCode || a.Offset != s.AcceptOffset || (gs != nil) != taken {
			t.Fatalf("%s: Accept %+v, session %v", s.Name, a, gs != nil)
		}
	})
}

// The seed corpus: the vectors' genuine frames and a few malformed relatives per target,
// regenerated with -update-fuzz-seeds whenever the vectors change.

type fuzzSeed struct {
	target, name string
	args         []any
}

func encodeSeed(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch a := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", a)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", a)
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", a)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", a)
		default:
			panic(fmt.Sprintf("seed argument of type %T", a))
		}
	}
	return []byte(b.String())
}

// flip returns b with bit 0 of byte i (from the end when negative) inverted.
func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 1
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func seedName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// maxSeedLen keeps seeds small: the fuzzer minimizes every new input it finds, in time that
// grows with the square of the input's length, and stops fuzzing meanwhile. Streams of the
// larger sessions add no code path the smaller ones miss.
const maxSeedLen = 1500

func fuzzSeeds(tb testing.TB) []fuzzSeed {
	v := vectors(tb)
	var seeds []fuzzSeed
	add := func(target, name string, args ...any) {
		seeds = append(seeds, fuzzSeed{target, "seed-" + seedName(name), args})
	}
	seen := map[string]bool{}
	addOnce := func(target, name string, b []byte) { // for inputs several sessions share
		if !seen[target+string(b)] {
			seen[target+string(b)] = true
			add(target, name, b)
		}
	}
	s0 := &v.Sessions[0]
	// The manipulated data streams start from the session with the smallest frames.
	small, smallIdx := v.data[0], 0
	for i, s := range v.data {
		if len(s.Wire.Data) >= 3 && s.Offer.Chunk < small.Offer.Chunk {
			small, smallIdx = s, i
		}
	}

	for i, s := range v.Sessions {
		stream := concat(s.Wire.Hello, s.Wire.Offer, s.Wire.Accept, concat(toBytes(s.Wire.Data)...), s.Wire.Ack, s.Wire.Report)
		if len(stream) > maxSeedLen {
			continue
		}
		add("FuzzReadFrame", "session "+s.Name, stream, protocol.MaxPayload+protocol.TagSize, uint16(protocol.FrameBufferSize(s.MaxPayload)), uint8(i%3*7))
	}
	for _, n := range v.Negative {
		add("FuzzReadFrame", "negative "+n.Name, []byte(n.Inbound), protocol.MaxOfferBody, uint16(protocol.FrameBufferSize(s0.MaxPayload)), uint8(1))
	}
	add("FuzzReadFrame", "limit below the hello", []byte(s0.Wire.Hello), protocol.MaxHelloBody-1, uint16(1024), uint8(0))
	add("FuzzReadFrame", "buffer below the hello", []byte(s0.Wire.Hello), protocol.MaxHelloBody, uint16(len(s0.Wire.Hello)-1), uint8(0))
	add("FuzzReadFrame", "buffer below a header", []byte(s0.Wire.Hello), protocol.MaxHelloBody, uint16(2), uint8(0))
	add("FuzzReadFrame", "negative limit", []byte{protocol.TypeAck, 0, 0}, -1, uint16(64), uint8(0))
	add("FuzzReadFrame", "length 65535", []byte{protocol.TypeData, 0xff, 0xff, 1, 2, 3}, 1<<20, uint16(0xffff), uint8(2))
	add("FuzzReadFrame", "cut inside header", []byte{protocol.TypeData, 0}, 100, uint16(100), uint8(0))

	for _, s := range v.Sessions {
		addOnce("FuzzParseHello", "hello "+s.Name, s.Wire.Hello)
	}
	for _, n := range v.Negative {
		if n.Role == "gateway" && len(n.Inbound) > 0 && n.Inbound[0] == protocol.TypeHello {
			add("FuzzParseHello", "negative "+n.Name, splitFrames(n.Inbound)[0])
		}
	}
	h := []byte(s0.Wire.Hello)
	add("FuzzParseHello", "empty", []byte{})
	add("FuzzParseHello", "header only", []byte{protocol.TypeHello, 0, 0})
	add("FuzzParseHello", "suite 2", func() []byte { b := bytes.Clone(h); b[4] = 2; return b }())
	add("FuzzParseHello", "id_len one over", func() []byte { b := bytes.Clone(h); b[5]++; return b }())
	add("FuzzParseHello", "id with a slash", func() []byte { b := bytes.Clone(h); b[6] = '/'; return b }())
	add("FuzzParseHello", "max payload 63", func() []byte {
		b := bytes.Clone(h)
		binary.BigEndian.PutUint16(b[len(b)-protocol.MACSize-2:], protocol.MinPayload-1)
		return b
	}())
	add("FuzzParseHello", "one byte short", h[:len(h)-1])

	for i, s := range v.Sessions {
		add("FuzzDeviceReadOffer", "offer "+s.Name, uint8(i), []byte(s.Wire.Offer))
	}
	add("FuzzDeviceReadOffer", "offer of another session", uint8(0), []byte(v.Sessions[1].Wire.Offer))
	add("FuzzDeviceReadOffer", "ciphertext bit flipped", uint8(0), flip(s0.Wire.Offer, -protocol.TagSize-1))
	add("FuzzDeviceReadOffer", "tag bit flipped", uint8(0), flip(s0.Wire.Offer, -1))
	add("FuzzDeviceReadOffer", "gateway nonce bit flipped", uint8(0), flip(s0.Wire.Offer, protocol.HeaderSize))
	add("FuzzDeviceReadOffer", "gw_len zero", uint8(0), func() []byte {
		b := bytes.Clone(s0.Wire.Offer)
		b[protocol.HeaderSize+protocol.NonceSize] = 0
		return b
	}())
	add("FuzzDeviceReadOffer", "gw_len 255", uint8(0), func() []byte {
		b := bytes.Clone(s0.Wire.Offer)
		b[protocol.HeaderSize+protocol.NonceSize] = 255
		return b
	}())
	add("FuzzDeviceReadOffer", "cut short", uint8(0), []byte(s0.Wire.Offer[:40]))
	add("FuzzDeviceReadOffer", "reject auth failed", uint8(0), protocol.AppendReject(nil, protocol.CodeAuthFailed))
	add("FuzzDeviceReadOffer", "reject of two bytes", uint8(0), []byte{protocol.TypeReject, 0, 2, 1, 1})

	for _, s := range v.Sessions {
		addOnce("FuzzDeviceOfferPlaintext", "plain "+s.Name, s.offerPlain(tb))
	}
	mp := s0.offerPlain(tb) // signed: status | seq | size | chunk | class_len | class | digest | flags | sig
	flagsAt := 1 + 11 + len(s0.Offer.Class) + protocol.DigestSize
	add("FuzzDeviceOfferPlaintext", "reserved flag", func() []byte { b := bytes.Clone(mp); b[flagsAt] |= 2; return b }())
	add("FuzzDeviceOfferPlaintext", "signed without signature", mp[:flagsAt+1])
	add("FuzzDeviceOfferPlaintext", "unsigned with signature", func() []byte { b := bytes.Clone(mp); b[flagsAt] = 0; return b }())
	add("FuzzDeviceOfferPlaintext", "class_len 0", func() []byte { b := bytes.Clone(mp); b[11] = 0; return b }())
	add("FuzzDeviceOfferPlaintext", "class_len 17", func() []byte { b := bytes.Clone(mp); b[11] = 17; return b }())
	add("FuzzDeviceOfferPlaintext", "size 0", func() []byte { b := bytes.Clone(mp); clear(b[5:9]); return b }())
	add("FuzzDeviceOfferPlaintext", "chunk 4097", func() []byte {
		b := bytes.Clone(mp)
		binary.BigEndian.PutUint16(b[9:], protocol.MaxPayload+1)
		return b
	}())
	add("FuzzDeviceOfferPlaintext", "trailing byte", append(bytes.Clone(mp), 0))
	add("FuzzDeviceOfferPlaintext", "status 3", []byte{3})
	add("FuzzDeviceOfferPlaintext", "retry of one byte", []byte{protocol.StatusRetry, 1})
	add("FuzzDeviceOfferPlaintext", "empty", []byte{})

	for i, s := range v.data {
		if stream := concat(toBytes(s.Wire.Data)...); len(stream) <= maxSeedLen {
			add("FuzzDeviceOpenData", "data "+s.Name, uint8(i), stream)
		}
	}
	d, si := toBytes(small.Wire.Data), uint8(smallIdx)
	add("FuzzDeviceOpenData", "garbage between frames", si, concat(d[0], flip(d[1], -1), d[1]))
	add("FuzzDeviceOpenData", "frame replayed", si, concat(d[0], d[0], d[1]))
	add("FuzzDeviceOpenData", "frames reordered", si, concat(d[1], d[0]))
	add("FuzzDeviceOpenData", "frame after final", si, concat(concat(d...), d[0]))
	add("FuzzDeviceOpenData", "final relabelled as data", si, concat(concat(d[:len(d)-1]...), func() []byte {
		b := bytes.Clone(d[len(d)-1])
		b[0] = protocol.TypeData
		return b
	}()))
	add("FuzzDeviceOpenData", "alert of zeros", si, append([]byte{protocol.TypeAlert, 0, protocol.AlertBody}, make([]byte, protocol.AlertBody)...))
	add("FuzzDeviceOpenData", "cut inside the header", si, d[0][:2])
	add("FuzzDeviceOpenData", "cut inside the body", si, d[0][:len(d[0])/2])

	for i, s := range v.data {
		add("FuzzGatewayReadDeviceFrame", "ack report "+s.Name, uint8(i), uint8(255), concat(s.Wire.Ack, s.Wire.Report))
	}
	add("FuzzGatewayReadDeviceFrame", "ack before the data is sent", si, uint8(1), concat(small.Wire.Ack, small.Wire.Report))
	add("FuzzGatewayReadDeviceFrame", "ack dropped", si, uint8(255), []byte(small.Wire.Report))
	add("FuzzGatewayReadDeviceFrame", "ack bit flipped", si, uint8(255), concat(flip(small.Wire.Ack, 5), small.Wire.Ack))
	add("FuzzGatewayReadDeviceFrame", "accept replayed", si, uint8(255), []byte(small.Wire.Accept))
	add("FuzzGatewayReadDeviceFrame", "data from a device", si, uint8(255), []byte(small.Wire.Data[0]))
	add("FuzzGatewayReadDeviceFrame", "empty ack", si, uint8(255), []byte{protocol.TypeAck, 0, 0})

	for i, s := range v.Sessions {
		add("FuzzReadAccept", "accept "+s.Name, uint8(i), []byte(s.Wire.Accept))
	}
	add("FuzzReadAccept", "accept of another session", uint8(0), []byte(v.Sessions[1].Wire.Accept))
	add("FuzzReadAccept", "bit flipped", uint8(0), flip(s0.Wire.Accept, protocol.HeaderSize))
	add("FuzzReadAccept", "type flipped", uint8(0), func() []byte { b := bytes.Clone(s0.Wire.Accept); b[0] = protocol.TypeAck; return b }())
	add("FuzzReadAccept", "one byte long", uint8(0), func() []byte {
		b := append(bytes.Clone(s0.Wire.Accept), 0)
		b[2]++
		return b
	}())
	add("FuzzReadAccept", "hello instead", uint8(0), []byte(s0.Wire.Hello))
	return seeds
}

func toBytes(h []hexBytes) [][]byte {
	out := make([][]byte, len(h))
	for i := range h {
		out[i] = h[i]
	}
	return out
}

// TestFuzzSeedsMatchVectors keeps the committed seed corpus (the seed-* files; the fuzzer's
// own finds keep their hash names) in step with the vectors.
func TestFuzzSeedsMatchVectors(t *testing.T) {
	want := map[string][]byte{}
	for _, s := range fuzzSeeds(t) {
		p := filepath.Join("testdata", "fuzz", s.target, s.name)
		if _, dup := want[p]; dup {
			t.Fatalf("two seeds named %s", p)
		}
		want[p] = encodeSeed(s.args)
	}
	have, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "seed-*"))
	if err != nil {
		t.Fatal(err)
	}
	if *updateFuzzSeeds {
		for _, p := range have {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		for p, b := range want {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for _, p := range have {
		if _, ok := want[p]; !ok {
			t.Errorf("%s is no longer generated; run go test ./protocol -run TestFuzzSeedsMatchVectors -update-fuzz-seeds", p)
		}
	}
	for p, b := range want {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s is missing or stale; run go test ./protocol -run TestFuzzSeedsMatchVectors -update-fuzz-seeds", p)
		}
	}
}
