package protocol

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// KeyLookup returns the PSK provisioned for a device ID. Unknown devices return ok == false;
// the handshake then runs the same code with a dummy key, so a peer cannot tell an unknown
// device from a wrong key (PROTOCOL.md 11.3).
type KeyLookup func(deviceID string) (psk [KeySize]byte, ok bool)

// GatewayConfig is the gateway role's configuration.
type GatewayConfig struct {
	GatewayID string
	// MaxPayload caps the chunk the gateway sends; the chunk of a session is the smaller of
	// this and the device's announced maximum.
	MaxPayload int
	Rand       io.Reader
	dummy      [KeySize]byte
}

// NewGatewayConfig checks the configuration and prepares the dummy key used for unknown
// devices.
func NewGatewayConfig(gatewayID string, maxPayload int, rnd io.Reader) (*GatewayConfig, error) {
	if err := CheckGatewayID(gatewayID); err != nil {
		return nil, err
	}
	if maxPayload < MinPayload || maxPayload > MaxPayload {
		return nil, fmt.Errorf("%w: gateway max payload %d outside %d..%d", ErrBadChunk, maxPayload, MinPayload, MaxPayload)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	c := &GatewayConfig{GatewayID: gatewayID, MaxPayload: maxPayload, Rand: rnd}
	if _, err := io.ReadFull(rnd, c.dummy[:]); err != nil {
		return nil, err
	}
	return c, nil
}

// gateway handshake states
const (
	gwWantHello = iota
	gwReadHello
	gwSentOffer
	gwDone
)

// GatewayHandshake is the gateway role of the handshake (PROTOCOL.md 4, 8.2): Hello in,
// Offer out, Accept in. It does no I/O.
type GatewayHandshake struct {
	cfg        *GatewayConfig
	state      int
	hello      Hello
	helloFrame [HeaderSize + MaxHelloBody]byte
	helloLen   int
	psk        [KeySize]byte
	th2        [DigestSize]byte
	offer      Offer
	manifest   Manifest
	send, recv *halfConn
	sess       *GatewaySession // from the Offer of an image on; accepted by ReadAccept
}

// NewGatewayHandshake starts the gateway side of one session.
func NewGatewayHandshake(cfg *GatewayConfig) *GatewayHandshake {
	return &GatewayHandshake{cfg: cfg}
}

// ReadHello parses a Hello and checks its mac1 under the device's key. An unknown device and
// a wrong key take the same path and return the same ErrAuthFailed. The returned Hello is
// valid until the handshake is discarded.
func (g *GatewayHandshake) ReadHello(frame []byte, lookup KeyLookup) (*Hello, error) {
	if g.state != gwWantHello {
		return nil, fmt.Errorf("%w: second Hello", ErrUnexpectedMessage)
	}
	m, err := ParseHello(frame)
	if err != nil {
		if m != nil { // version or suite: the device ID is not known yet
			return m, err
		}
		return nil, err
	}
	psk, known := lookup(m.DeviceID)
	if !known {
		psk = g.cfg.dummy
	}
	key := mac1Key(&psk, m.DeviceID)
	want := computeMAC1(&key, frame[:len(frame)-MACSize])
	clear(key[:])
	good := subtle.ConstantTimeCompare(want[:], m.MAC1[:]) & boolToInt(known)
	if good != 1 {
		clear(psk[:])
		return m, fmt.Errorf("%w: device %q", ErrAuthFailed, m.DeviceID)
	}
	g.psk = psk
	g.hello = *m
	g.helloLen = copy(g.helloFrame[:], frame)
	g.state = gwReadHello
	return &g.hello, nil
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Chunk is the chunk size this session will use: the smaller of the device's and the
// gateway's maximum payload.
func (g *GatewayHandshake) Chunk() uint16 {
	return uint16(min(int(g.hello.MaxPayload), g.cfg.MaxPayload))
}

// AppendOffer appends the Offer frame. For StatusOffer the manifest's Chunk is set by the
// gateway (see Chunk); callers leave it zero.
func (g *GatewayHandshake) AppendOffer(dst []byte, o *Offer) ([]byte, error) {
	if g.state != gwReadHello {
		return dst, fmt.Errorf("%w: Offer before a valid Hello", ErrUnexpectedMessage)
	}
	g.offer = *o
	g.offer.GatewayID = g.cfg.GatewayID
	if o.Status == StatusOffer {
		if o.Manifest == nil {
			return dst, fmt.Errorf("%w: offer without a manifest", ErrMalformed)
		}
		g.manifest = *o.Manifest
		g.manifest.Chunk = g.Chunk()
		g.offer.Manifest = &g.manifest
	}
	var plainBuf [MaxOfferPlain]byte
	plain, err := g.offer.appendPlain(plainBuf[:0])
	if err != nil {
		return dst, err
	}
	var ng [NonceSize]byte
	if _, err := io.ReadFull(g.cfg.Rand, ng[:]); err != nil {
		return dst, fmt.Errorf("protocol: gateway nonce: %w", err)
	}
	gw := g.cfg.GatewayID
	start := len(dst)
	dst = appendHeader(dst, TypeOffer, NonceSize+1+len(gw)+len(plain)+TagSize)
	dst = append(dst, ng[:]...)
	dst = append(dst, byte(len(gw)))
	dst = append(dst, gw...)
	th := transcriptHash(g.helloFrame[:g.helloLen], dst[start:])
	keys := deriveSessionKeys(&g.psk, &g.hello.Nd, &ng, g.hello.DeviceID, gw, &th)
	clear(g.psk[:])
	defer clear(keys.g2d.key[:])
	defer clear(keys.d2g.key[:])
	if g.send, err = newHalfConn(&keys.g2d); err != nil {
		return dst, err
	}
	if g.recv, err = newHalfConn(&keys.d2g); err != nil {
		return dst, err
	}
	sealedAt := len(dst)
	dst, err = g.send.seal(dst, dst[start:start+HeaderSize], plain, th[:])
	if err != nil {
		return dst, err
	}
	g.th2 = confirmHash(&th, dst[sealedAt:])
	g.state = gwSentOffer
	if g.offer.Status == StatusOffer {
		start := ResumeStart(&g.hello, &g.manifest)
		g.sess = &GatewaySession{send: g.send, recv: g.recv, m: g.manifest, start: start, next: start,
			early: start + uint32(EarlyFrames(int(g.manifest.Chunk))*int(g.manifest.Chunk))}
		g.sess.sent.Store(start)
		g.sess.acked.Store(start)
	}
	return dst, nil
}

// Session is the data session of an offered image from the Offer on. Until ReadAccept has
// opened the device's ok Accept it produces only the first EarlyFrames frames
// (PROTOCOL.md 4.4), from ResumeStart.
func (g *GatewayHandshake) Session() *GatewaySession { return g.sess }

// Accept is the device's answer to an Offer.
type Accept struct {
	Code   byte
	Offset uint32
}

// ReadAccept opens the device's Accept; its tag proves the device holds the key now (not
// only when a replayable Hello was made) and saw this exact Offer. With CodeOK on an offered
// image it returns the data session; any other code ends the session and is returned both in
// the Accept and as an authenticated *PeerError (nil for the expected "declined" answer to
// an up-to-date or retry offer).
func (g *GatewayHandshake) ReadAccept(frame []byte) (*Accept, *GatewaySession, error) {
	if g.state != gwSentOffer {
		return nil, nil, fmt.Errorf("%w: Accept before an Offer", ErrUnexpectedMessage)
	}
	body, err := splitFrame(frame, TypeAccept)
	if err != nil {
		return nil, nil, err
	}
	if len(body) != AcceptBody {
		return nil, nil, fmt.Errorf("%w: Accept of %d bytes", ErrMalformed, len(body))
	}
	p, err := g.recv.openFrame(frame, g.th2[:])
	if err != nil {
		return nil, nil, err
	}
	g.state = gwDone
	a := &Accept{Code: p[0], Offset: binary.BigEndian.Uint32(p[1:])}
	if g.offer.Status != StatusOffer {
		if a.Code == CodeOK {
			return a, nil, fmt.Errorf("%w: device accepted an offer without an image", ErrMalformed)
		}
		if a.Code == CodeDeclined {
			return a, nil, nil
		}
		return a, nil, &PeerError{Code: a.Code, Authenticated: true}
	}
	if a.Code != CodeOK {
		return a, nil, &PeerError{Code: a.Code, Authenticated: true}
	}
	if a.Offset != g.sess.start {
		return a, nil, fmt.Errorf("%w: Accept asks for offset %d, the Hello's resume point gives %d", ErrMalformed, a.Offset, g.sess.start)
	}
	g.sess.accepted.Store(true)
	return a, g.sess, nil
}

// Hello returns the device's Hello once ReadHello accepted it.
func (g *GatewayHandshake) Hello() *Hello { return &g.hello }

// AppendAlert appends an Alert from the gateway once keys exist (after AppendOffer).
func (g *GatewayHandshake) AppendAlert(dst []byte, code byte) ([]byte, error) {
	if g.send == nil {
		return dst, errors.New("protocol: no keys yet: use AppendReject")
	}
	return g.send.sealFrame(dst, TypeAlert, []byte{code})
}

// GatewaySession is the gateway side of the data stream (PROTOCOL.md 5.3, 5.4). One
// goroutine may send (AppendFrame, AppendAlert) while another reads the device's frames
// (ReadDeviceFrame): the two directions share no mutable state but the atomic offsets.
type GatewaySession struct {
	send, recv *halfConn
	m          Manifest
	start      uint32
	early      uint32 // before the Accept, no frame may start at or past this offset
	accepted   atomic.Bool
	next       uint32 // sender-owned: offset of the next payload byte to send
	finalSent  bool
	sent       atomic.Uint32 // bytes below this offset have been sealed
	acked      atomic.Uint32 // highest durable offset the device reported
	extra      [4 + 4 + DigestSize]byte
}

// Manifest is the manifest of the session, with the negotiated chunk.
func (s *GatewaySession) Manifest() *Manifest { return &s.m }

// Start is the offset the device resumed from.
func (s *GatewaySession) Start() uint32 { return s.start }

// Done reports whether the Final frame has been produced.
func (s *GatewaySession) Done() bool { return s.finalSent }

// Accepted reports whether the device's ok Accept has been opened.
func (s *GatewaySession) Accepted() bool { return s.accepted.Load() }

// MayAppend reports whether AppendFrame may produce the next frame now: after the Final,
// never; before the Accept, only the first EarlyFrames (PROTOCOL.md 4.4).
func (s *GatewaySession) MayAppend() bool {
	return !s.finalSent && (s.next < s.early || s.accepted.Load())
}

// Sent is the offset below which every byte has been sealed into a frame.
func (s *GatewaySession) Sent() uint32 { return s.sent.Load() }

// Acked is the highest durable offset the device has acknowledged.
func (s *GatewaySession) Acked() uint32 { return s.acked.Load() }

// NextFrameSize is the wire size of the next frame AppendFrame will produce.
func (s *GatewaySession) NextFrameSize() int {
	return HeaderSize + int(min(s.m.Size-s.next, uint32(s.m.Chunk))) + TagSize
}

// ImageBytes is an image reader that holds the whole image in memory, such as the gateway
// cache's images: AppendFrame then seals each payload straight from it into the frame. Any
// other io.ReaderAt is read into the frame first and sealed in place, which costs a copy of
// every byte (two in GatewayConn's stream, which reads a batch of payloads at once): about 5%
// of the server's CPU at 1 KiB chunks (gateway/server's BenchmarkAggregateThroughput).
type ImageBytes interface {
	io.ReaderAt
	// ImageBytes returns the whole image, which nothing may change while the stream runs, or
	// nil when this one does not hold it in memory (then ReadAt serves it).
	ImageBytes() []byte
}

// imageBytes is img's bytes when it holds them in memory, else nil.
func imageBytes(img io.ReaderAt) []byte {
	if m, ok := img.(ImageBytes); ok {
		return m.ImageBytes()
	}
	return nil
}

// AppendFrame appends the next Data or Final frame to dst, sealing its payload straight from
// img when it holds the image in memory (ImageBytes), else reading it into dst and sealing it
// in place.
func (s *GatewaySession) AppendFrame(dst []byte, img io.ReaderAt) ([]byte, error) {
	if s.finalSent {
		return dst, fmt.Errorf("%w: nothing left after the Final", ErrUnexpectedMessage)
	}
	if !s.MayAppend() {
		return dst, errors.New("protocol: frame past the early window before the device's Accept")
	}
	off := s.next
	n := min(s.m.Size-off, uint32(s.m.Chunk))
	typ := byte(TypeData)
	if s.m.Size-off <= uint32(s.m.Chunk) {
		typ = TypeFinal
	}
	start := len(dst)
	need := HeaderSize + int(n) + TagSize
	if cap(dst)-start < need {
		grown := make([]byte, start, start+need)
		copy(grown, dst)
		dst = grown
	}
	var payload []byte
	if b := imageBytes(img); b != nil {
		if uint64(len(b)) < uint64(off)+uint64(n) {
			return dst[:start], fmt.Errorf("protocol: image of %d bytes has no %d at %d", len(b), n, off)
		}
		payload = b[off : off+n]
	} else {
		payload = dst[start+HeaderSize : start+HeaderSize+int(n)]
		// io.ReaderAt may return io.EOF with a full read at the end of the input: judge the
		// read by its count.
		if got, err := img.ReadAt(payload, int64(off)); got < len(payload) {
			return dst[:start], fmt.Errorf("protocol: reading image at %d: %d of %d bytes: %w", off, got, len(payload), err)
		}
	}
	extra := binary.BigEndian.AppendUint32(s.extra[:0], off)
	if typ == TypeFinal {
		extra = binary.BigEndian.AppendUint32(extra, s.m.Size)
		extra = append(extra, s.m.Digest[:]...)
	}
	dst, err := s.send.sealFrame(dst[:start], typ, payload, extra)
	if err != nil {
		return dst[:start], err
	}
	s.next = off + n
	s.sent.Store(s.next)
	s.finalSent = typ == TypeFinal
	return dst, nil
}

// AppendAlert appends an Alert that ends the session with code.
func (s *GatewaySession) AppendAlert(dst []byte, code byte) ([]byte, error) {
	return s.send.sealFrame(dst, TypeAlert, []byte{code})
}

// DeviceMessage is an Ack, Report or Alert from the device.
type DeviceMessage struct {
	Type   byte
	Offset uint32 // Ack, Report: durable offset
	Code   byte   // Report, Alert
}

// ReadDeviceFrame opens a frame from the device during the data stream. Offsets must never go
// backwards and never pass what was sent: a device cannot claim bytes it was never given.
func (s *GatewaySession) ReadDeviceFrame(frame []byte) (DeviceMessage, error) {
	if len(frame) < HeaderSize {
		return DeviceMessage{}, fmt.Errorf("%w: short frame", ErrMalformed)
	}
	typ := frame[0]
	var want int
	switch typ {
	case TypeAck:
		want = AckBody
	case TypeReport:
		want = ReportBody
	case TypeAlert:
		want = AlertBody
	default:
		return DeviceMessage{}, fmt.Errorf("%w: %s from a device", ErrUnexpectedMessage, TypeName(typ))
	}
	body, err := splitFrame(frame, typ)
	if err != nil {
		return DeviceMessage{}, err
	}
	if len(body) != want {
		return DeviceMessage{}, fmt.Errorf("%w: %s of %d bytes", ErrMalformed, TypeName(typ), len(body))
	}
	p, err := s.recv.openFrame(frame)
	if err != nil {
		return DeviceMessage{}, err
	}
	msg := DeviceMessage{Type: typ}
	switch typ {
	case TypeAck:
		msg.Offset = binary.BigEndian.Uint32(p)
	case TypeReport:
		msg.Code = p[0]
		msg.Offset = binary.BigEndian.Uint32(p[1:])
	case TypeAlert:
		msg.Code = p[0]
		return msg, &PeerError{Code: msg.Code, Authenticated: true}
	}
	if msg.Offset < s.acked.Load() || msg.Offset > s.sent.Load() {
		return msg, fmt.Errorf("%w: %s offset %d outside acked %d..sent %d", ErrMalformed, TypeName(typ), msg.Offset, s.acked.Load(), s.sent.Load())
	}
	s.acked.Store(msg.Offset)
	return msg, nil
}
