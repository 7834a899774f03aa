package protocol

import (
	"errors"
	"fmt"
	"io"
)

// DeviceConn runs the device role over a byte stream with one receive buffer of
// FrameBufferSize(MaxPayload) bytes, as a microcontroller would.
type DeviceConn struct {
	rw   io.ReadWriter
	cfg  *DeviceConfig
	buf  []byte
	out  [HeaderSize + MaxHelloBody]byte
	hs   *DeviceHandshake
	sess *DeviceSession
}

// NewDeviceConn prepares a device session over rw; cfg.BootCounter must already be durable.
func NewDeviceConn(rw io.ReadWriter, cfg *DeviceConfig) (*DeviceConn, error) {
	hs, err := NewDeviceHandshake(cfg)
	if err != nil {
		return nil, err
	}
	return &DeviceConn{rw: rw, cfg: cfg, hs: hs, buf: make([]byte, FrameBufferSize(cfg.MaxPayload))}, nil
}

// Handshake sends the Hello, reads the gateway's Offer and answers it. resume returns the
// durable offset already in flash for an offered manifest (0 to start afresh). It returns
// the offer and, when an image is offered and passes cfg.Check, leaves a data session ready
// for Next. A refused offer is answered with its code and returned as the policy error.
func (c *DeviceConn) Handshake(resume func(*Manifest) uint32) (*Offer, error) {
	if _, err := c.rw.Write(c.hs.Hello()); err != nil {
		return nil, fmt.Errorf("sending Hello: %w", err)
	}
	frame, err := ReadFrame(c.rw, c.buf, MaxOfferBody)
	if err != nil {
		return nil, fmt.Errorf("reading Offer: %w", eofIsTruncated(err))
	}
	offer, err := c.hs.ReadOffer(frame)
	if err != nil {
		return nil, err
	}
	code, offset := byte(CodeDeclined), uint32(0)
	var policy error
	if offer.Status == StatusOffer {
		if policy = c.cfg.Check(offer.Manifest); policy != nil {
			code = CodeFor(policy)
		} else {
			code, offset = CodeOK, resume(offer.Manifest)
		}
	}
	out, sess, err := c.hs.AppendAccept(c.out[:0], code, offset)
	if err != nil {
		return offer, err
	}
	if _, err := c.rw.Write(out); err != nil {
		return offer, fmt.Errorf("sending Accept: %w", err)
	}
	c.sess = sess
	return offer, policy
}

// Session is the data session after an accepted offer, nil otherwise.
func (c *DeviceConn) Session() *DeviceSession { return c.sess }

// Next reads and opens the next Data or Final frame. The payload belongs at offset and is
// valid until the next call.
func (c *DeviceConn) Next() (payload []byte, offset uint32, final bool, err error) {
	if c.sess == nil {
		return nil, 0, false, fmt.Errorf("%w: no data session", ErrUnexpectedMessage)
	}
	frame, err := ReadFrame(c.rw, c.buf, c.sess.MaxFrame()-HeaderSize)
	if err != nil {
		return nil, 0, false, eofIsTruncated(err)
	}
	offset = c.sess.Offset()
	payload, final, err = c.sess.OpenData(frame)
	return payload, offset, final, err
}

// Ack reports the durable offset to the gateway.
func (c *DeviceConn) Ack(durable uint32) error { return c.send(c.sess.AppendAck(c.out[:0], durable)) }

// Report tells the gateway the result of verifying the image.
func (c *DeviceConn) Report(code byte, durable uint32) error {
	return c.send(c.sess.AppendReport(c.out[:0], code, durable))
}

// Alert ends the session with code.
func (c *DeviceConn) Alert(code byte) error { return c.send(c.sess.AppendAlert(c.out[:0], code)) }

func (c *DeviceConn) send(b []byte, err error) error {
	if err != nil {
		return err
	}
	_, err = c.rw.Write(b)
	return err
}

// eofIsTruncated turns a clean end of stream where a frame was due into ErrTruncated.
func eofIsTruncated(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: connection closed", ErrTruncated)
	}
	return err
}

// GatewayConn runs the gateway role over a byte stream.
type GatewayConn struct {
	rw   io.ReadWriter
	hs   *GatewayHandshake
	buf  [HeaderSize + MaxHelloBody]byte // every frame a device sends fits
	out  [HeaderSize + MaxOfferBody]byte
	sess *GatewaySession
}

// NewGatewayConn prepares the gateway side of one session over rw.
func NewGatewayConn(rw io.ReadWriter, cfg *GatewayConfig) *GatewayConn {
	return &GatewayConn{rw: rw, hs: NewGatewayHandshake(cfg)}
}

// Handshake reads the Hello, asks offerFor what to offer this device, sends the Offer and
// reads the Accept. A Hello that fails is answered with a Reject: one code for unknown
// device and wrong key alike. The returned Hello is set whenever one parsed, so callers can
// log the device ID of a failure.
func (c *GatewayConn) Handshake(lookup KeyLookup, offerFor func(*Hello) (*Offer, error)) (*Hello, *Accept, error) {
	frame, err := ReadFrame(c.rw, c.buf[:], MaxHelloBody)
	if err != nil {
		return nil, nil, fmt.Errorf("reading Hello: %w", eofIsTruncated(err))
	}
	hello, err := c.hs.ReadHello(frame, lookup)
	if err != nil {
		c.rw.Write(AppendReject(c.out[:0], CodeFor(err))) //nolint:errcheck // best effort before closing
		return hello, nil, err
	}
	offer, err := offerFor(hello)
	if err != nil {
		c.rw.Write(AppendReject(c.out[:0], CodeUnavailable)) //nolint:errcheck // best effort
		return hello, nil, err
	}
	out, err := c.hs.AppendOffer(c.out[:0], offer)
	if err != nil {
		return hello, nil, err
	}
	if _, err := c.rw.Write(out); err != nil {
		return hello, nil, fmt.Errorf("sending Offer: %w", err)
	}
	frame, err = ReadFrame(c.rw, c.buf[:], AcceptBody)
	if err != nil {
		return hello, nil, fmt.Errorf("reading Accept: %w", eofIsTruncated(err))
	}
	accept, sess, err := c.hs.ReadAccept(frame)
	c.sess = sess
	return hello, accept, err
}

// Session is the data session after an accepted offer, nil otherwise.
func (c *GatewayConn) Session() *GatewaySession { return c.sess }

// Stream sends the image from the accepted offset to the Final, packing as many frames as fit
// into wbuf per Write (wbuf must hold at least one frame), while reading the device's Acks
// (passed to onAck, which may be nil) until its Report, which it returns. On an error the
// caller must close rw: that also ends the reader.
func (c *GatewayConn) Stream(img io.ReaderAt, wbuf []byte, onAck func(DeviceMessage)) (DeviceMessage, error) {
	s := c.sess
	if s == nil {
		return DeviceMessage{}, fmt.Errorf("%w: no data session", ErrUnexpectedMessage)
	}
	if cap(wbuf) < HeaderSize+int(s.m.Chunk)+TagSize {
		return DeviceMessage{}, fmt.Errorf("protocol: write buffer of %d bytes cannot hold a %d-byte chunk", cap(wbuf), s.m.Chunk)
	}
	type result struct {
		msg DeviceMessage
		err error
	}
	done := make(chan result, 1)
	go func() {
		for {
			frame, err := ReadFrame(c.rw, c.buf[:], ReportBody)
			if err != nil {
				done <- result{err: eofIsTruncated(err)}
				return
			}
			msg, err := s.ReadDeviceFrame(frame)
			if err != nil || msg.Type == TypeReport {
				done <- result{msg, err}
				return
			}
			if onAck != nil {
				onAck(msg)
			}
		}
	}()
	for !s.Done() {
		out := wbuf[:0]
		for !s.Done() && len(out)+s.NextFrameSize() <= cap(wbuf) {
			var err error
			if out, err = s.AppendFrame(out, img); err != nil {
				return DeviceMessage{}, err
			}
		}
		if _, err := c.rw.Write(out); err != nil {
			return DeviceMessage{}, fmt.Errorf("sending data: %w", err)
		}
		select {
		case r := <-done: // the device spoke: its Report if the Final just went, else early
			if r.err == nil && !s.Done() {
				r.err = fmt.Errorf("%w: Report before the Final", ErrUnexpectedMessage)
			}
			return r.msg, r.err
		default:
		}
	}
	r := <-done
	return r.msg, r.err
}
