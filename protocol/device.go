package protocol

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DeviceConfig is what a device knows before it connects (PROTOCOL.md 4, 8).
type DeviceConfig struct {
	DeviceID   string
	PSK        [KeySize]byte
	Class      string
	Running    uint32 // sequence number of the running image
	MaxPayload int    // largest chunk the device can take, MinPayload..MaxPayload
	MaxImage   uint32 // largest image the update slot holds; 0 means no limit
	// VendorKeys, when set, make the vendor signature mandatory: an unsigned or badly
	// signed offer is refused with ErrBadSignature.
	VendorKeys []ed25519.PublicKey
	// GatewayID, when set, is the only gateway this device talks to.
	GatewayID string
	// BootCounter must be incremented and made durable by the caller before each session;
	// it goes into Nd so keys stay fresh even if Rand repeats after a reboot.
	BootCounter uint32
	Rand        io.Reader
	// Resume is the image the update slot holds the first Resume.Offset durable bytes of
	// (PROTOCOL.md 9.1); zero when there is none. The Hello names it, and an Offer of that
	// image streams from there.
	Resume ResumePoint
}

// ResumePoint is where a device can resume a download: the SHA-256 of the image and how many
// of its bytes are durable in the slot.
type ResumePoint struct {
	Offset uint32
	Digest [DigestSize]byte
}

// ErrStaleResume is the device's refusal of an offer whose digest begins as the resume
// point's but is another image (a 2^-64 accident, or a gateway's lie): the gateway already
// streams from the resume offset, which the slot does not hold for this image. The device
// answers declined, and must forget its resume point so the next session starts afresh.
var ErrStaleResume = fmt.Errorf("%w: offered image shares the resume point's ID, not its digest", ErrDeclined)

func (c *DeviceConfig) check() error {
	if err := CheckDeviceID(c.DeviceID); err != nil {
		return err
	}
	if err := CheckClass(c.Class); err != nil {
		return err
	}
	if c.GatewayID != "" {
		if err := CheckGatewayID(c.GatewayID); err != nil {
			return err
		}
	}
	if c.MaxPayload < MinPayload || c.MaxPayload > MaxPayload {
		return fmt.Errorf("%w: max payload %d outside %d..%d", ErrBadChunk, c.MaxPayload, MinPayload, MaxPayload)
	}
	if c.Rand == nil {
		return errors.New("protocol: DeviceConfig.Rand is nil")
	}
	return nil
}

// device handshake states
const (
	devSentHello = iota
	devReadOffer
	devDone
)

// DeviceHandshake is the device role of the handshake (PROTOCOL.md 4, 8.1): Hello out,
// Offer in, Accept out. It does no I/O.
type DeviceHandshake struct {
	cfg        DeviceConfig
	state      int
	helloFrame [HeaderSize + MaxHelloBody]byte
	helloLen   int
	hello      Hello
	th2        [DigestSize]byte
	offer      *Offer
	start      uint32
	send, recv *halfConn
}

// NewDeviceHandshake checks cfg and builds the Hello: Nd is 12 random bytes followed by the
// boot counter, big-endian.
func NewDeviceHandshake(cfg *DeviceConfig) (*DeviceHandshake, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	h := &DeviceHandshake{cfg: *cfg}
	m := &h.hello
	*m = Hello{
		Version:    Version1,
		Suite:      SuiteChaChaPoly,
		DeviceID:   cfg.DeviceID,
		Running:    cfg.Running,
		MaxPayload: uint16(cfg.MaxPayload),
	}
	if cfg.Resume.Offset > 0 {
		m.ResumeOffset = cfg.Resume.Offset
		m.ResumeID = cfg.Resume.id()
	}
	if _, err := io.ReadFull(cfg.Rand, m.Nd[:NonceSize-4]); err != nil {
		return nil, fmt.Errorf("protocol: device nonce: %w", err)
	}
	binary.BigEndian.PutUint32(m.Nd[NonceSize-4:], cfg.BootCounter)
	key := mac1Key(&h.cfg.PSK, cfg.DeviceID)
	b := m.appendUnauthenticated(h.helloFrame[:0])
	m.MAC1 = computeMAC1(&key, b)
	clear(key[:])
	b = append(b, m.MAC1[:]...)
	h.helloLen = len(b)
	return h, nil
}

// Hello returns the Hello frame to send.
func (h *DeviceHandshake) Hello() []byte { return h.helloFrame[:h.helloLen] }

// ReadOffer processes the gateway's answer to the Hello: an Offer, whose tag proves the
// gateway holds the key and saw this Hello, or a Reject, returned as an unauthenticated
// *PeerError. It decrypts frame in place. Policy (rollback, class, size, signature) is
// checked separately by Check, so the device can still answer a refused offer.
func (h *DeviceHandshake) ReadOffer(frame []byte) (*Offer, error) {
	if h.state != devSentHello {
		return nil, fmt.Errorf("%w: Offer after the handshake moved on", ErrUnexpectedMessage)
	}
	if len(frame) >= HeaderSize && frame[0] == TypeReject {
		return nil, parseReject(frame)
	}
	body, err := splitFrame(frame, TypeOffer)
	if err != nil {
		return nil, err
	}
	if len(body) < NonceSize+1 {
		return nil, fmt.Errorf("%w: Offer of %d bytes", ErrMalformed, len(body))
	}
	var ng [NonceSize]byte
	copy(ng[:], body)
	gwLen := int(body[NonceSize])
	clearLen := NonceSize + 1 + gwLen
	if len(body) < clearLen+1+TagSize || len(body) > MaxOfferBody {
		return nil, fmt.Errorf("%w: Offer of %d bytes with gw_len %d", ErrMalformed, len(body), gwLen)
	}
	gatewayID := string(body[NonceSize+1 : clearLen])
	if err := CheckGatewayID(gatewayID); err != nil {
		return nil, err
	}
	if h.cfg.GatewayID != "" && gatewayID != h.cfg.GatewayID {
		return nil, fmt.Errorf("%w: Offer from gateway %q, device is bound to %q", ErrAuthFailed, gatewayID, h.cfg.GatewayID)
	}
	th := transcriptHash(h.Hello(), frame[:HeaderSize+clearLen])
	keys := deriveSessionKeys(&h.cfg.PSK, &h.hello.Nd, &ng, h.cfg.DeviceID, gatewayID, &th)
	defer clear(keys.g2d.key[:])
	defer clear(keys.d2g.key[:])
	recv, err := newHalfConn(&keys.g2d)
	if err != nil {
		return nil, err
	}
	send, err := newHalfConn(&keys.d2g)
	if err != nil {
		return nil, err
	}
	sealed := body[clearLen:]
	// TH2 covers the ciphertext, so compute it before decrypting in place.
	h.th2 = confirmHash(&th, sealed)
	plain, err := recv.open(frame[:HeaderSize], sealed, th[:])
	if err != nil {
		return nil, err
	}
	o, err := parseOfferPlain(plain)
	if err != nil {
		return nil, err
	}
	o.GatewayID = gatewayID
	h.offer, h.send, h.recv = o, send, recv
	if o.Status == StatusOffer {
		h.start = ResumeStart(&h.hello, o.Manifest)
	}
	h.state = devReadOffer
	return o, nil
}

// Start is where the offered image streams from, as the gateway computed it from the Hello
// (ResumeStart): the device's resume offset for the image it named, else 0. An ok Accept
// must ask for exactly this offset.
func (h *DeviceHandshake) Start() uint32 { return h.start }

// Check applies the device's policy to an offered manifest (PROTOCOL.md 8.1): the class must
// be the device's, the sequence higher than the running one, the size within the slot, the
// chunk within the announced maximum, and the vendor signature valid when vendor keys are
// configured. The error maps to the code to send in the Accept (CodeFor).
func (c *DeviceConfig) Check(m *Manifest) error {
	switch {
	case m.Class != c.Class:
		return fmt.Errorf("%w: offered %q, device is %q", ErrWrongClass, m.Class, c.Class)
	case m.Seq < c.Running:
		return fmt.Errorf("%w: offered %d, running %d", ErrRollback, m.Seq, c.Running)
	case m.Seq == c.Running:
		return fmt.Errorf("%w: sequence %d already running", ErrDeclined, m.Seq)
	case c.MaxImage != 0 && m.Size > c.MaxImage:
		return fmt.Errorf("%w: %d bytes, slot holds %d", ErrTooLarge, m.Size, c.MaxImage)
	case int(m.Chunk) > c.MaxPayload:
		return fmt.Errorf("%w: chunk %d over the announced %d", ErrBadChunk, m.Chunk, c.MaxPayload)
	case len(c.VendorKeys) > 0 && !m.VerifySignature(c.VendorKeys):
		return fmt.Errorf("%w: image %x", ErrBadSignature, m.Digest[:8])
	case resumeStart(c.Resume.Offset, c.Resume.id(), m) > 0 && m.Digest != c.Resume.Digest:
		return fmt.Errorf("%w: image %x", ErrStaleResume, m.Digest[:8])
	}
	return nil
}

// AppendAccept appends the Accept frame: code CodeOK with offset Start (where the gateway
// already streams from: the resume point for the image the Hello named, else 0) takes the
// offer; any other code, with offset 0, ends the session. It returns the data session when the offer was taken.
func (h *DeviceHandshake) AppendAccept(dst []byte, code byte, offset uint32) ([]byte, *DeviceSession, error) {
	if h.state != devReadOffer {
		return dst, nil, fmt.Errorf("%w: Accept before an Offer", ErrUnexpectedMessage)
	}
	taken := code == CodeOK && h.offer.Status == StatusOffer
	if code == CodeOK && !taken {
		return dst, nil, fmt.Errorf("protocol: cannot accept an offer with status %d", h.offer.Status)
	}
	if taken && offset != h.start {
		return dst, nil, fmt.Errorf("protocol: accepting at offset %d, but the gateway streams from %d (Start)", offset, h.start)
	}
	var plain [acceptPlain]byte
	plain[0] = code
	binary.BigEndian.PutUint32(plain[1:], offset)
	dst, err := h.send.sealFrame(dst, TypeAccept, plain[:], h.th2[:])
	if err != nil {
		return dst, nil, err
	}
	h.state = devDone
	if !taken {
		return dst, nil, nil
	}
	return dst, &DeviceSession{send: h.send, recv: h.recv, m: *h.offer.Manifest, offset: offset}, nil
}

// DeviceSession is the device side of the data stream (PROTOCOL.md 5.3, 5.4).
type DeviceSession struct {
	send, recv *halfConn
	m          Manifest
	offset     uint32 // of the next expected payload byte
	done       bool
	extra      [4 + 4 + DigestSize]byte
}

// Manifest is the accepted manifest.
func (s *DeviceSession) Manifest() *Manifest { return &s.m }

// Offset is the image offset of the next payload byte the device expects.
func (s *DeviceSession) Offset() uint32 { return s.offset }

// Done reports whether the Final frame has been received and verified.
func (s *DeviceSession) Done() bool { return s.done }

// MaxFrame is the largest frame the device can receive in this session.
func (s *DeviceSession) MaxFrame() int { return HeaderSize + int(s.m.Chunk) + TagSize }

// OpenData authenticates and decrypts the next Data or Final frame in place and returns its
// payload, which belongs at the offset Offset had before the call. The frame's index is in
// its nonce and its offset (and for the Final, the size and digest) in its associated data,
// so a dropped, replayed, reordered or truncated stream fails here. An Alert from the
// gateway comes back as an authenticated *PeerError.
func (s *DeviceSession) OpenData(frame []byte) (payload []byte, final bool, err error) {
	if len(frame) < HeaderSize {
		return nil, false, fmt.Errorf("%w: short frame", ErrMalformed)
	}
	if frame[0] == TypeAlert {
		return nil, false, openAlert(s.recv, frame)
	}
	if s.done {
		return nil, false, fmt.Errorf("%w: %s after the Final", ErrUnexpectedMessage, TypeName(frame[0]))
	}
	remaining := s.m.Size - s.offset
	want, n := byte(TypeData), uint32(s.m.Chunk)
	if remaining <= uint32(s.m.Chunk) {
		want, n = TypeFinal, remaining
	}
	body, err := splitFrame(frame, want)
	if err != nil {
		return nil, false, err
	}
	if len(body) != int(n)+TagSize {
		return nil, false, fmt.Errorf("%w: %s at offset %d has %d body bytes, want %d", ErrMalformed, TypeName(want), s.offset, len(body), int(n)+TagSize)
	}
	extra := binary.BigEndian.AppendUint32(s.extra[:0], s.offset)
	if want == TypeFinal {
		extra = binary.BigEndian.AppendUint32(extra, s.m.Size)
		extra = append(extra, s.m.Digest[:]...)
	}
	plain, err := s.recv.openFrame(frame, extra)
	if err != nil {
		return nil, false, err
	}
	s.offset += n
	s.done = want == TypeFinal
	return plain, s.done, nil
}

// AppendAck appends an Ack of the durable offset: every byte below it is in flash.
func (s *DeviceSession) AppendAck(dst []byte, durable uint32) ([]byte, error) {
	var p [ackPlain]byte
	binary.BigEndian.PutUint32(p[:], durable)
	return s.send.sealFrame(dst, TypeAck, p[:])
}

// AppendReport appends the Report of the verification result (CodeOK: the image is verified
// and marked bootable) and the durable offset.
func (s *DeviceSession) AppendReport(dst []byte, code byte, durable uint32) ([]byte, error) {
	var p [reportPlain]byte
	p[0] = code
	binary.BigEndian.PutUint32(p[1:], durable)
	return s.send.sealFrame(dst, TypeReport, p[:])
}

// AppendAlert appends an Alert that ends the session with code.
func (s *DeviceSession) AppendAlert(dst []byte, code byte) ([]byte, error) {
	return s.send.sealFrame(dst, TypeAlert, []byte{code})
}

func openAlert(h *halfConn, frame []byte) error {
	if _, err := splitFrame(frame, TypeAlert); err != nil {
		return err
	}
	if len(frame) != HeaderSize+AlertBody {
		return fmt.Errorf("%w: Alert of %d bytes", ErrMalformed, len(frame))
	}
	p, err := h.openFrame(frame)
	if err != nil {
		return err
	}
	return &PeerError{Code: p[0], Authenticated: true}
}

// AppendReject appends the gateway's plaintext Reject (PROTOCOL.md 4.5).
func AppendReject(dst []byte, code byte) []byte {
	return append(appendHeader(dst, TypeReject, RejectBody), code)
}

func parseReject(frame []byte) error {
	body, err := splitFrame(frame, TypeReject)
	if err != nil {
		return err
	}
	if len(body) != RejectBody {
		return fmt.Errorf("%w: Reject of %d bytes", ErrMalformed, len(body))
	}
	return &PeerError{Code: body[0]}
}
