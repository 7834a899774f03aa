package protocol

import (
	"encoding/binary"
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

// Handshake sends the Hello, reads the gateway's Offer and answers it. When an image is
// offered and passes cfg.Check, prepare (which may be nil) readies the slot for the stream
// that starts at start (DeviceHandshake.Start: cfg.Resume.Offset for the image the Hello
// named, else 0); an error from it refuses the offer with its code. It returns the offer and,
// when taken, leaves a data session ready for Next. A refused offer is answered with its code
// and returned as the error.
func (c *DeviceConn) Handshake(prepare func(m *Manifest, start uint32) error) (*Offer, error) {
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
	var refusal error
	if offer.Status == StatusOffer {
		refusal = c.cfg.Check(offer.Manifest)
		if refusal == nil && prepare != nil {
			refusal = prepare(offer.Manifest, c.hs.Start())
		}
		code = CodeFor(refusal)
		if refusal == nil {
			code, offset = CodeOK, c.hs.Start()
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
	return offer, refusal
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
	rw    io.ReadWriter
	hs    *GatewayHandshake
	buf   [HeaderSize + MaxHelloBody]byte // every frame a device sends fits
	out   [HeaderSize + MaxOfferBody]byte // the Offer; during Stream, the device's frames
	sess  *GatewaySession
	stage stagedImage
}

// NewGatewayConn prepares the gateway side of one session over rw.
func NewGatewayConn(rw io.ReadWriter, cfg *GatewayConfig) *GatewayConn {
	return &GatewayConn{rw: rw, hs: NewGatewayHandshake(cfg)}
}

// Offer reads the Hello, asks offerFor what to offer this device and sends the Offer. A
// Hello that fails is answered with a Reject: one code for unknown device and wrong key
// alike. The returned Hello is set whenever one parsed, so callers can log the device ID of a
// failure. When an image is offered, Session holds its stream from then on: StreamWith sends
// the first frames at once, behind the Offer, and reads the Accept itself; otherwise (or to
// wait for the Accept first) call ReadAccept.
func (c *GatewayConn) Offer(lookup KeyLookup, offerFor func(*Hello) (*Offer, error)) (*Hello, error) {
	frame, err := ReadFrame(c.rw, c.buf[:], MaxHelloBody)
	if err != nil {
		return nil, fmt.Errorf("reading Hello: %w", eofIsTruncated(err))
	}
	hello, err := c.hs.ReadHello(frame, lookup)
	if err != nil {
		c.rw.Write(AppendReject(c.out[:0], CodeFor(err))) //nolint:errcheck // best effort before closing
		return hello, err
	}
	offer, err := offerFor(hello)
	if err != nil {
		c.rw.Write(AppendReject(c.out[:0], CodeUnavailable)) //nolint:errcheck // best effort
		return hello, err
	}
	out, err := c.hs.AppendOffer(c.out[:0], offer)
	if err != nil {
		return hello, err
	}
	if _, err := c.rw.Write(out); err != nil {
		return hello, fmt.Errorf("sending Offer: %w", err)
	}
	c.sess = c.hs.Session()
	return hello, nil
}

// ReadAccept reads and opens the device's answer to the Offer (GatewayHandshake.ReadAccept).
// After it, Session is nil unless the device took the offered image.
func (c *GatewayConn) ReadAccept() (*Accept, error) {
	frame, err := ReadFrame(c.rw, c.buf[:], AcceptBody)
	if err != nil {
		c.sess = nil
		return nil, fmt.Errorf("reading Accept: %w", eofIsTruncated(err))
	}
	accept, sess, err := c.hs.ReadAccept(frame)
	c.sess = sess
	return accept, err
}

// Handshake is Offer, then ReadAccept: the whole handshake before any image byte.
func (c *GatewayConn) Handshake(lookup KeyLookup, offerFor func(*Hello) (*Offer, error)) (*Hello, *Accept, error) {
	hello, err := c.Offer(lookup, offerFor)
	if err != nil {
		return hello, nil, err
	}
	accept, err := c.ReadAccept()
	return hello, accept, err
}

// Session is the data session of the offered image: from Offer on, not yet accepted; after
// ReadAccept, only if the device took it.
func (c *GatewayConn) Session() *GatewaySession { return c.sess }

// FinalWatcher is a stream that wants to know when the Final is out; Stream calls
// FinalWritten once the write that carried it returns. The gateway server's connections let
// the device's Acks gather in the kernel before they wake the reader (SO_RCVLOWAT): on an
// otherwise idle gateway each wake-up costs more CPU than sealing the data an Ack
// acknowledges (gateway/server BenchmarkOneDevice). Once the Final is out the Report is due,
// and it must get through alone.
type FinalWatcher interface {
	FinalWritten()
}

// PendingReader is a stream that can hand over what has arrived without waiting for more.
// Stream then reads the device's frames itself, between its writes, instead of on a
// goroutine of its own: that goroutine costs a session a stack, and each Ack or pair of Acks
// a wake-up of it and of a thread to run it, which on a gateway streaming to a hundred
// devices over loopback cost more than all of its reads (gateway/server
// BenchmarkAggregateThroughput). The gateway server's connections are PendingReaders.
type PendingReader interface {
	// ReadPending reads up to len(p) bytes that have arrived, without waiting: 0 and nil
	// when nothing has.
	ReadPending(p []byte) (int, error)
}

// pendingEvery is how many bytes Stream writes between two looks at what a PendingReader
// has: Acks come every 32 KiB by default, and a look costs a syscall, as much as sealing
// 2-4 KiB, which most looks made in vain when they came every 64 KiB (two thirds of the
// reads in BenchmarkAggregateThroughput found nothing). Progress is then seen in steps of
// 256 KiB at most, a quarter of an ESP8266 image.
//
// Between looks the device's frames wait in the kernel, and while a write blocks (the
// device reads slowly) nothing looks. A device that Acks often enough could fill the
// gateway's receive buffer and its own send buffer during one such write and then stop
// reading, blocked on its next Ack, while the gateway waits for it to read: the spec leaves
// the Ack rate to the device. So a look that finds more than busyLook bytes (Acks more often
// than every 2 KiB written) hands the reading to a goroutine for the rest of the stream;
// below that rate, what piles up during a write of even a 4 MiB send buffer is a few dozen
// KiB, far less than the kernel holds.
const (
	pendingEvery = 256 << 10
	busyLook     = pendingEvery / (2 << 10) * (HeaderSize + AckBody)
)

// Stream sends the image from the accepted offset to the Final, packing as many frames as fit
// into wbuf per Write (wbuf must hold at least one frame), while reading the device's Acks
// (passed to onAck, which may be nil) until its Report, which it returns. On an error the
// caller must close rw: that also ends the reader.
//
// The image is read once per Write, the payloads of all the frames that fit in one ReadAt,
// and sealed in place: nothing is allocated per frame, and a file-backed image costs one read
// per write, not one per frame. An image held in memory (ImageBytes) is not read at all: each
// payload is sealed straight from it into its frame.
func (c *GatewayConn) Stream(img io.ReaderAt, wbuf []byte, onAck func(DeviceMessage)) (DeviceMessage, error) {
	return c.StreamWith(img, oneBuffer(wbuf[:cap(wbuf)]), onAck)
}

// WriteBuffers lends StreamWith a buffer for each write, so that a gateway can size every
// write to what its socket takes at once and hold little while a write is blocked.
type WriteBuffers interface {
	// Next returns the buffer to pack the next write into, taking back last, the one of the
	// previous write (nil at first). Its length, which must hold one frame, is what Stream
	// fills at most.
	Next(last []byte) []byte
	// Release takes back last while Stream needs none: before it waits for the Accept (the
	// early frames are out), right after the Final is written, before the wait for the
	// Report, or when Stream ends early. A gateway holding many devices at their Accept or
	// their Report (each verifying what it flashed) then holds no write buffers. Next may
	// follow a Release; Release(nil) after one must be harmless.
	Release(last []byte)
}

// oneBuffer lends the same buffer for every write.
type oneBuffer []byte

func (b oneBuffer) Next([]byte) []byte { return b }
func (oneBuffer) Release([]byte)       {}

// AcceptWatcher is a stream that wants to know when the device's ok Accept has been opened,
// as FinalWatcher for the Final: StreamWith calls AcceptOpened from its reader. The gateway
// server lets Acks gather in the kernel only from then on, since the Accept must get
// through alone.
type AcceptWatcher interface {
	AcceptOpened()
}

// StreamWith is Stream with a write buffer from bufs for each write. Whenever it has called
// bufs.Next, it ends having called bufs.Release after the last Next.
//
// On a session not yet accepted (Offer without ReadAccept) it sends the early frames at once
// and reads the Accept first: onAck gets it as a DeviceMessage of type TypeAccept before any
// Ack, and the frames past the early window wait for it. A refusal ends the stream with that
// message and an authenticated *PeerError.
//
// Over a PendingReader it reads the device's frames between writes (every pendingEvery
// bytes), and with blocking reads while it waits for the Accept and once the Final is out;
// over any other stream a goroutine reads them while the image goes out.
func (c *GatewayConn) StreamWith(img io.ReaderAt, bufs WriteBuffers, onAck func(DeviceMessage)) (DeviceMessage, error) {
	s := c.sess
	if s == nil {
		return DeviceMessage{}, fmt.Errorf("%w: no data session", ErrUnexpectedMessage)
	}
	d := &deviceFrames{c: c, s: s, buf: c.out[:], onAck: onAck} // the Offer is long sent
	if !s.Accepted() {
		d.accepted = make(chan struct{})
	}
	var done chan streamResult // the reader goroutine's result, once there is one
	reader := func() {
		ch := make(chan streamResult, 1)
		go func() { r, _ := d.readUntil(c.rw, false); ch <- r }()
		done = ch
	}
	pr, looks := c.rw.(PendingReader)
	if !looks {
		reader()
	}
	unseen := 0 // bytes written since the last look
	r, early := c.sendImage(img, bufs, func() (streamResult, bool) {
		if done == nil { // read until the Accept is taken
			return d.readUntil(c.rw, true)
		}
		select {
		case <-d.accepted:
			return streamResult{}, false
		case r := <-done: // a refusal, or the connection ended before the Accept
			return r, true
		}
	}, func(wrote int) (streamResult, bool) {
		if done != nil {
			select {
			case r := <-done:
				return r, true
			default:
				return streamResult{}, false
			}
		}
		// After the Final, readUntil takes what has arrived with its first read.
		if unseen += wrote; unseen < pendingEvery || s.Done() {
			return streamResult{}, false
		}
		unseen = 0
		r, end, took := d.readPending(pr)
		if !end && took > busyLook {
			reader()
		}
		return r, end
	})
	switch {
	case early:
	case done != nil:
		r = <-done
	default:
		r, _ = d.readUntil(c.rw, false)
	}
	return r.msg, r.err
}

type streamResult struct {
	msg DeviceMessage
	err error
}

// sendImage writes the frames from the session's offset through the Final, with a buffer
// from bufs for each write, which it releases before it returns. Past the early window it
// calls accept, which returns once the device's Accept is taken, or true with what ended the
// stream instead. After each write it asks spoke, with the bytes written, whether the device
// has said something that ends the stream. It returns early (true) with that (a refusal, an
// Alert, a broken stream) or with an error of its own.
func (c *GatewayConn) sendImage(img io.ReaderAt, bufs WriteBuffers, accept func() (streamResult, bool), spoke func(wrote int) (streamResult, bool)) (r streamResult, early bool) {
	s := c.sess
	var wbuf []byte
	defer func() { bufs.Release(wbuf) }()
	for !s.Done() {
		if !s.MayAppend() {
			bufs.Release(wbuf) // a device may take long to answer: hold nothing meanwhile
			wbuf = nil
			if r, ended := accept(); ended {
				return r, true
			}
		}
		if wbuf = bufs.Next(wbuf); len(wbuf) < s.NextFrameSize() {
			return streamResult{err: fmt.Errorf("protocol: write buffer of %d bytes cannot hold a %d-byte chunk", len(wbuf), s.m.Chunk)}, true
		}
		out, err := c.fill(img, wbuf)
		if err != nil {
			return streamResult{err: err}, true
		}
		if _, err := c.rw.Write(out); err != nil {
			return streamResult{err: fmt.Errorf("sending data: %w", err)}, true
		}
		if fw, ok := c.rw.(FinalWatcher); ok && s.Done() {
			fw.FinalWritten()
		}
		if r, ok := spoke(len(out)); ok { // its Report if the Final just went, else early
			if r.err == nil && !s.Done() {
				r.err = fmt.Errorf("%w: Report before the Final", ErrUnexpectedMessage)
			}
			return r, true
		}
	}
	return streamResult{}, false
}

// fill seals into wbuf the frames from the session's offset on that fit in it: straight from
// an image in memory (ImageBytes), else from one read of all their payloads.
func (c *GatewayConn) fill(img io.ReaderAt, wbuf []byte) ([]byte, error) {
	s := c.sess
	next := s.next
	k, payload := s.framesThatFit(next, len(wbuf), !s.Accepted())
	if imageBytes(img) != nil {
		return c.appendFrames(wbuf[:0], k, img)
	}
	// The payloads go to the end of wbuf in one read; AppendFrame then moves each forward into
	// its frame. Frame i starts at least 19*(k-i) bytes before its payload's staged copy, so a
	// frame never overwrites a payload still to be moved (see stagedImage).
	staged := wbuf[len(wbuf)-payload:]
	if got, err := img.ReadAt(staged, int64(next)); got < payload {
		return nil, fmt.Errorf("protocol: reading image at %d: %d of %d bytes: %w", next, got, payload, err)
	}
	c.stage = stagedImage{img: img, at: int64(next), b: staged}
	defer func() { c.stage = stagedImage{} }()
	return c.appendFrames(wbuf[:0], k, &c.stage)
}

// appendFrames appends the session's next k frames to out.
func (c *GatewayConn) appendFrames(out []byte, k int, img io.ReaderAt) ([]byte, error) {
	for range k {
		var err error
		if out, err = c.sess.AppendFrame(out, img); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// deviceFrames gathers the device's frames during the stream from reads split anywhere, as
// many per read as have arrived: the Accept first when the stream runs ahead of it (then
// accepted is closed), then Acks, passed to onAck, up to the Report.
type deviceFrames struct {
	c        *GatewayConn
	s        *GatewaySession
	buf      []byte // holds every frame a device sends during the stream
	have     int    // bytes of buf read and not yet taken
	onAck    func(DeviceMessage)
	accepted chan struct{} // nil when the session was accepted before the stream
}

// take takes n more bytes read into buf[have:]: every whole frame, in order. It returns
// true with the result at a Report, an Alert, a refusal or a bad frame.
func (d *deviceFrames) take(n int) (streamResult, bool) {
	d.have += n
	at := 0
	for d.have-at >= HeaderSize {
		body := int(binary.BigEndian.Uint16(d.buf[at+1 : at+3]))
		if body > max(ReportBody, AcceptBody) {
			return streamResult{err: fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrFrameTooLarge, TypeName(d.buf[at]), body, max(ReportBody, AcceptBody))}, true
		}
		if d.have-at < HeaderSize+body {
			break
		}
		frame := d.buf[at : at+HeaderSize+body]
		at += HeaderSize + body
		if !d.s.Accepted() {
			msg, err := d.c.openAccept(frame) // on ok, the session is Accepted from here on
			if err != nil {
				return streamResult{msg, err}, true
			}
			close(d.accepted)
			if aw, ok := d.c.rw.(AcceptWatcher); ok {
				aw.AcceptOpened()
			}
			if d.onAck != nil {
				d.onAck(msg)
			}
			continue
		}
		msg, err := d.s.ReadDeviceFrame(frame)
		if err != nil || msg.Type == TypeReport {
			return streamResult{msg, err}, true
		}
		if d.onAck != nil {
			d.onAck(msg)
		}
	}
	d.have = copy(d.buf, d.buf[at:d.have])
	return streamResult{}, false
}

// broken is the result of a read that failed with err.
func (d *deviceFrames) broken(err error) streamResult {
	if errors.Is(err, io.EOF) && d.have > 0 {
		err = fmt.Errorf("%w: inside a %s frame", ErrTruncated, TypeName(d.buf[0]))
	}
	return streamResult{err: eofIsTruncated(err)}
}

// readUntil reads the device's frames until its Report, an error or the end of the stream,
// which it returns with true, or, with toAccept, until the Accept is taken (then false).
func (d *deviceFrames) readUntil(r io.Reader, toAccept bool) (streamResult, bool) {
	for !toAccept || !d.s.Accepted() {
		n, err := r.Read(d.buf[d.have:])
		if res, done := d.take(n); done {
			return res, true
		}
		if err != nil {
			return d.broken(err), true
		}
	}
	return streamResult{}, false
}

// readPending takes the device's frames that have arrived, without waiting for more, and
// says how many bytes it read. It returns true with the result when they end the stream.
func (d *deviceFrames) readPending(pr PendingReader) (r streamResult, end bool, read int) {
	for {
		space := len(d.buf) - d.have
		n, err := pr.ReadPending(d.buf[d.have:])
		read += n
		if res, done := d.take(n); done {
			return res, true, read
		}
		if err != nil {
			return d.broken(err), true, read
		}
		if n < space { // all there was
			return streamResult{}, false, read
		}
	}
}

// openAccept opens the Accept of a session streaming ahead of it: ok for the session's
// start, or a refusal, returned as the message and its error.
func (c *GatewayConn) openAccept(frame []byte) (DeviceMessage, error) {
	if frame[0] != TypeAccept {
		return DeviceMessage{}, fmt.Errorf("%w: %s before the Accept", ErrUnexpectedMessage, TypeName(frame[0]))
	}
	a, _, err := c.hs.ReadAccept(frame)
	if a == nil {
		return DeviceMessage{}, err
	}
	return DeviceMessage{Type: TypeAccept, Offset: a.Offset, Code: a.Code}, err
}

// framesThatFit counts the frames from offset next on that fit in size bytes (at least one)
// and the payload bytes they carry; with early, only those inside the early window.
func (s *GatewaySession) framesThatFit(next uint32, size int, early bool) (frames, payload int) {
	used := 0
	for rem := s.m.Size - next; ; {
		p := int(min(rem, uint32(s.m.Chunk)))
		if frames > 0 && (used+HeaderSize+p+TagSize > size || early && next+uint32(payload) >= s.early) {
			return frames, payload
		}
		used += HeaderSize + p + TagSize
		payload += p
		frames++
		if rem <= uint32(s.m.Chunk) { // that one is the Final
			return frames, payload
		}
		rem -= uint32(p)
	}
}

// stagedImage is the image as AppendFrame sees it during one batch: reads inside the staged
// span are served from b (the image from offset at), which lies further into the write buffer
// than the frame being filled, so copy moves the payload forward in place; anything else
// goes to the image itself.
type stagedImage struct {
	img io.ReaderAt
	at  int64
	b   []byte
}

func (st *stagedImage) ReadAt(p []byte, off int64) (int, error) {
	if off >= st.at && off+int64(len(p)) <= st.at+int64(len(st.b)) {
		return copy(p, st.b[off-st.at:]), nil
	}
	return st.img.ReadAt(p, off)
}
