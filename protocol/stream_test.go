package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// Tests of GatewayConn.Stream's data path: one image read per write, the device's frames
// parsed however the stream splits them, the write buffer released exactly once.

// countingImage counts ReadAt calls on an in-memory image.
type countingImage struct {
	r     *bytes.Reader
	reads atomic.Int64
}

func (c *countingImage) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.r.ReadAt(p, off)
}

// gatewaySide wraps the gateway's end of a pipe: it counts writes and, when maxRead is set,
// hands the device's bytes over at most maxRead(i) at a time.
type gatewaySide struct {
	net.Conn
	writes  atomic.Int64
	maxRead func() int
	sent    bytes.Buffer // what the gateway wrote, in order (written by the stream's goroutine only)
}

func (g *gatewaySide) Write(p []byte) (int, error) {
	g.writes.Add(1)
	g.sent.Write(p)
	return g.Conn.Write(p)
}

func (g *gatewaySide) Read(p []byte) (int, error) {
	if g.maxRead != nil {
		p = p[:min(len(p), g.maxRead())]
	}
	return g.Conn.Read(p)
}

// lender lends one buffer and counts what Stream does with it.
type lender struct {
	buf      []byte
	next     atomic.Int64
	released atomic.Int64
	foreign  atomic.Bool // something other than the lent buffer came back
}

func (l *lender) Next(last []byte) []byte {
	if last != nil && &last[:1][0] != &l.buf[0] {
		l.foreign.Store(true)
	}
	l.next.Add(1)
	return l.buf
}

func (l *lender) Release(last []byte) {
	if last != nil && &last[:1][0] != &l.buf[0] {
		l.foreign.Store(true)
	}
	l.released.Add(1)
}

// streamCase is one gateway session over a pipe: the device side is run by device, which
// gets the pipe's end after nothing has been sent.
type streamCase struct {
	img    []byte
	image  io.ReaderAt // what the stream reads img from; nil: a bytes.Reader
	chunk  int
	wbuf   int
	side   *gatewaySide
	device func(c net.Conn) error
	acks   []uint32
	bufs   *lender
}

// run does the handshake and the stream and returns the gateway's result and the device's
// error.
func (sc *streamCase) run(t *testing.T) (protocol.DeviceMessage, error, error) {
	t.Helper()
	gw, dev := net.Pipe()
	t.Cleanup(func() { gw.Close(); dev.Close() })
	deadline := time.Now().Add(20 * time.Second)
	gw.SetDeadline(deadline)
	dev.SetDeadline(deadline)
	if sc.side == nil {
		sc.side = &gatewaySide{}
	}
	sc.side.Conn = gw
	devErr := make(chan error, 1)
	go func() {
		err := sc.device(dev)
		if err != nil {
			dev.Close()
		}
		devErr <- err
	}()
	gc := protocol.NewGatewayConn(sc.side, gatewayConfig(t, sc.chunk))
	m := manifestFor(sc.img, 2)
	if _, _, err := gc.Handshake(lookupOne("dev-1", testPSK), func(*protocol.Hello) (*protocol.Offer, error) {
		return &protocol.Offer{Status: protocol.StatusOffer, Manifest: m}, nil
	}); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	var mu sync.Mutex
	sc.bufs = &lender{buf: make([]byte, sc.wbuf)}
	if sc.image == nil {
		sc.image = bytes.NewReader(sc.img)
	}
	rep, err := gc.StreamWith(sc.image, sc.bufs,
		func(m protocol.DeviceMessage) { mu.Lock(); sc.acks = append(sc.acks, m.Offset); mu.Unlock() })
	gw.Close()
	return rep, err, <-devErr
}

// deviceThatAcks reads the whole image, checks every payload lands where the last one ended,
// Acks every ackEvery bytes (0: never) and reports success once the image matches.
func deviceThatAcks(t *testing.T, img []byte, chunk, ackEvery int, acks *int) func(net.Conn) error {
	return func(c net.Conn) error {
		dc, err := protocol.NewDeviceConn(c, deviceConfig(chunk))
		if err != nil {
			return err
		}
		if _, err := dc.Handshake(nil); err != nil {
			return err
		}
		got := make([]byte, 0, len(img))
		lastAck := 0
		for {
			p, off, final, err := dc.Next()
			if err != nil {
				return err
			}
			if int(off) != len(got) {
				return errors.New("payload out of order")
			}
			got = append(got, p...)
			if final {
				if !bytes.Equal(got, img) {
					return protocol.ErrDigestMismatch
				}
				return dc.Report(protocol.CodeOK, uint32(len(got)))
			}
			if ackEvery > 0 && len(got)-lastAck >= ackEvery {
				lastAck = len(got)
				*acks++
				if err := dc.Ack(uint32(lastAck)); err != nil {
					return err
				}
			}
		}
	}
}

func TestStreamReadsTheImageOncePerWrite(t *testing.T) {
	img := randomImage(10000, 21)
	ci := &countingImage{r: bytes.NewReader(img)}
	var acks int
	sc := &streamCase{img: img, chunk: 64, wbuf: 1000, device: deviceThatAcks(t, img, 64, 0, &acks)}
	gw, dev := net.Pipe()
	defer gw.Close()
	defer dev.Close()
	gw.SetDeadline(time.Now().Add(20 * time.Second))
	sc.side = &gatewaySide{Conn: gw}
	devErr := make(chan error, 1)
	go func() { devErr <- sc.device(dev) }()
	gc := protocol.NewGatewayConn(sc.side, gatewayConfig(t, 64))
	if _, _, err := gc.Handshake(lookupOne("dev-1", testPSK), func(*protocol.Hello) (*protocol.Offer, error) {
		return &protocol.Offer{Status: protocol.StatusOffer, Manifest: manifestFor(img, 2)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	handshakeWrites := sc.side.writes.Load()
	rep, err := gc.Stream(ci, make([]byte, 0, 1000), nil)
	if err != nil || rep.Code != protocol.CodeOK {
		t.Fatalf("stream: %+v, %v", rep, err)
	}
	if err := <-devErr; err != nil {
		t.Fatalf("device: %v", err)
	}
	// 157 frames of 83 bytes (the last shorter), 12 to a 1000-byte buffer: 14 writes.
	writes := sc.side.writes.Load() - handshakeWrites
	if writes != 14 || ci.reads.Load() != writes {
		t.Fatalf("%d image reads for %d writes, want one per write and 14 writes", ci.reads.Load(), writes)
	}
}

// memoryImage is an image in memory that says so (protocol.ImageBytes) and fails every ReadAt:
// the stream must seal straight from its bytes.
type memoryImage []byte

func (m memoryImage) ImageBytes() []byte { return m }

func (memoryImage) ReadAt([]byte, int64) (int, error) {
	return 0, errors.New("ReadAt of an image in memory")
}

func TestStreamSealsStraightFromAnImageInMemory(t *testing.T) {
	img := randomImage(10000, 23)
	wire := func(image io.ReaderAt) []byte {
		var acks int
		sc := &streamCase{img: img, image: image, chunk: 64, wbuf: 1000, device: deviceThatAcks(t, img, 64, 640, &acks)}
		rep, err, devErr := sc.run(t)
		if err != nil || devErr != nil || rep.Code != protocol.CodeOK {
			t.Fatalf("%T: stream %+v, %v; device %v", image, rep, err, devErr)
		}
		return sc.side.sent.Bytes()
	}
	// The same keys and nonces (seeded) give the same frames whichever way the payloads come.
	if read, mem := wire(bytes.NewReader(img)), wire(memoryImage(img)); !bytes.Equal(read, mem) {
		t.Fatalf("sealed from memory: %d bytes on the wire differ from the %d sealed after a read", len(mem), len(read))
	}
}

func TestStreamRefusesAnImageInMemoryShorterThanItsManifest(t *testing.T) {
	img := randomImage(10000, 24)
	var acks int
	sc := &streamCase{img: img, image: memoryImage(img[:9000]), chunk: 64, wbuf: 1000,
		device: deviceThatAcks(t, img, 64, 0, &acks)}
	if _, err, _ := sc.run(t); err == nil || !strings.Contains(err.Error(), "image of 9000 bytes") {
		t.Fatalf("stream of a short image: %v, want the short image named", err)
	}
}

func TestStreamTakesDeviceFramesSplitAnywhere(t *testing.T) {
	img := randomImage(64*200, 22)
	rng := rand.New(rand.NewPCG(3, 4))
	var sent int
	sc := &streamCase{img: img, chunk: 64, wbuf: 4096, device: deviceThatAcks(t, img, 64, 64, &sent),
		side: &gatewaySide{maxRead: func() int { return 1 + rng.IntN(30) }}}
	rep, err, derr := sc.run(t)
	if err != nil || derr != nil || rep.Code != protocol.CodeOK {
		t.Fatalf("gateway %+v %v, device %v", rep, err, derr)
	}
	if len(sc.acks) != sent || sent != 199 {
		t.Fatalf("%d Acks seen of %d sent, want 199", len(sc.acks), sent)
	}
	for i, off := range sc.acks {
		if off != uint32(64*(i+1)) {
			t.Fatalf("Ack %d for offset %d, want %d", i, off, 64*(i+1))
		}
	}
	if rep.Offset != uint32(len(img)) {
		t.Fatalf("Report for %d bytes, want %d", rep.Offset, len(img))
	}
}

// deviceThen takes the whole image and then runs after on the raw connection instead of
// reporting.
func deviceThen(img []byte, chunk int, after func(c net.Conn, dc *protocol.DeviceConn) error) func(net.Conn) error {
	return func(c net.Conn) error {
		dc, err := protocol.NewDeviceConn(c, deviceConfig(chunk))
		if err != nil {
			return err
		}
		if _, err := dc.Handshake(nil); err != nil {
			return err
		}
		for {
			_, _, final, err := dc.Next()
			if err != nil {
				return err
			}
			if final {
				return after(c, dc)
			}
		}
	}
}

func TestStreamRejectsAnOversizedDeviceFrame(t *testing.T) {
	img := randomImage(3000, 23)
	sc := &streamCase{img: img, chunk: 1024, wbuf: 8192, device: deviceThen(img, 1024, func(c net.Conn, _ *protocol.DeviceConn) error {
		_, err := c.Write([]byte{protocol.TypeAck, 0x01, 0xf4}) // a 500-byte body
		return err
	})}
	_, err, _ := sc.run(t)
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("gateway: %v, want ErrFrameTooLarge", err)
	}
}

func TestStreamEndInsideADeviceFrameIsTruncated(t *testing.T) {
	img := randomImage(3000, 24)
	sc := &streamCase{img: img, chunk: 1024, wbuf: 8192, device: deviceThen(img, 1024, func(c net.Conn, _ *protocol.DeviceConn) error {
		if _, err := c.Write([]byte{protocol.TypeReport, 0, protocol.ReportBody, 1, 2, 3}); err != nil {
			return err
		}
		return c.Close()
	})}
	_, err, _ := sc.run(t)
	if !errors.Is(err, protocol.ErrTruncated) {
		t.Fatalf("gateway: %v, want ErrTruncated", err)
	}
}

func TestStreamReleasesTheBufferOnceBeforeTheReport(t *testing.T) {
	img := randomImage(20000, 25)
	sc := &streamCase{img: img, chunk: 512, wbuf: 2048}
	releasedFirst := false
	sc.device = deviceThen(img, 512, func(_ net.Conn, dc *protocol.DeviceConn) error {
		// The gateway releases right after the write with the Final returns, which may be a
		// moment after this side read it: wait for it, boundedly, before reporting.
		for deadline := time.Now().Add(10 * time.Second); sc.bufs.released.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		releasedFirst = sc.bufs.released.Load() == 1
		return dc.Report(protocol.CodeOK, uint32(len(img)))
	})
	rep, err, derr := sc.run(t)
	if err != nil || derr != nil || rep.Code != protocol.CodeOK {
		t.Fatalf("gateway %+v %v, device %v", rep, err, derr)
	}
	// 20000 bytes in frames of 531: 38 frames, 3 to a write: 13 writes, each with its buffer.
	if !releasedFirst || sc.bufs.released.Load() != 1 || sc.bufs.next.Load() != 13 || sc.bufs.foreign.Load() {
		t.Fatalf("released before the Report: %v; %d buffers lent, %d releases (want 13, 1), foreign %v",
			releasedFirst, sc.bufs.next.Load(), sc.bufs.released.Load(), sc.bufs.foreign.Load())
	}
}

func TestStreamReleasesTheBufferOnceWhenCut(t *testing.T) {
	img := randomImage(64<<10, 26)
	sc := &streamCase{img: img, chunk: 1024, wbuf: 4096, device: func(c net.Conn) error {
		dc, err := protocol.NewDeviceConn(c, deviceConfig(1024))
		if err != nil {
			return err
		}
		if _, err := dc.Handshake(nil); err != nil {
			return err
		}
		for range 5 {
			if _, _, _, err := dc.Next(); err != nil {
				return err
			}
		}
		return c.Close()
	}}
	_, err, _ := sc.run(t)
	if err == nil {
		t.Fatal("a cut stream ended without an error")
	}
	if n := sc.bufs.released.Load(); n != 1 {
		t.Fatalf("%d releases, want 1", n)
	}
}

func TestStreamRefusesABufferSmallerThanAFrame(t *testing.T) {
	img := randomImage(5000, 28)
	sc := &streamCase{img: img, chunk: 1024, wbuf: 1024 + protocol.DataOverhead - 1, device: deviceThatAcks(t, img, 1024, 0, new(int))}
	_, err, _ := sc.run(t)
	if err == nil || sc.bufs.released.Load() != 1 {
		t.Fatalf("a %d-byte buffer for 1 KiB frames: %v, %d releases", sc.wbuf, err, sc.bufs.released.Load())
	}
}

// pendingSide is the gateway's end of a TCP connection that reads what has arrived without
// waiting (protocol.PendingReader), as the gateway server's connections do, and counts the
// looks: the calls that read all there was.
type pendingSide struct {
	*net.TCPConn
	looks atomic.Int64
}

func (p *pendingSide) ReadPending(b []byte) (int, error) {
	rc, err := p.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), b)
		return true
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == syscall.EAGAIN:
		p.looks.Add(1)
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	if n < len(b) {
		p.looks.Add(1)
	}
	return n, nil
}

// The spec leaves the Ack rate to the device: one that Acks every frame, faster than the
// gateway reads, must still get the whole image, whether the gateway reads the device's
// frames on a goroutine or between its writes (a PendingReader). In the latter case the
// Acks are so many that the reading goes to a goroutine after the first look; a device that
// Acks every 32 KiB is looked at between writes to the end.
func TestStreamSurvivesADeviceAckingEveryFrame(t *testing.T) {
	for _, c := range []struct {
		name     string
		pending  bool
		ackEvery int
		minLooks int64 // between writes
		maxLooks int64
		early    bool // the stream runs ahead of the Accept (Offer, not Handshake)
	}{
		{"goroutine", false, 64, 0, 0, false},
		{"goroutine/early", false, 64, 0, 0, true},
		{"pending/every-frame", true, 64, 1, 1, false},
		{"pending/every-32KiB", true, 32 << 10, 2, 4, false}, // about 1 MiB / pendingEvery
		{"pending/early", true, 32 << 10, 2, 4, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := randomImage(1<<20, 27)
			ln := listen(t)
			gc := gatewayConfig(t, 4096)
			var acks atomic.Int64
			side := make(chan *pendingSide, 1)
			done := make(chan error, 1)
			go func() {
				c0, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c0.Close()
				c0.SetDeadline(time.Now().Add(30 * time.Second))
				// Small buffers both ways, as over a real link: the gateway is still
				// writing when the Acks come.
				c0.(*net.TCPConn).SetWriteBuffer(16 << 10)
				var rw net.Conn = c0
				if c.pending {
					ps := &pendingSide{TCPConn: c0.(*net.TCPConn)}
					side <- ps
					rw = ps
				}
				g := protocol.NewGatewayConn(rw, gc)
				offerFor := func(*protocol.Hello) (*protocol.Offer, error) {
					return &protocol.Offer{Status: protocol.StatusOffer, Manifest: manifestFor(img, 2)}, nil
				}
				if c.early {
					_, err = g.Offer(lookupOne("dev-1", testPSK), offerFor)
				} else {
					_, _, err = g.Handshake(lookupOne("dev-1", testPSK), offerFor)
				}
				if err != nil {
					done <- err
					return
				}
				_, err = g.Stream(bytes.NewReader(img), make([]byte, 0, 64<<10), func(m protocol.DeviceMessage) {
					if m.Type == protocol.TypeAck {
						acks.Add(1)
					}
				})
				done <- err
			}()
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				}); err != nil {
					return err
				}
				return serr
			}}
			conn, err := d.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			var sent int
			if err := deviceThatAcks(t, img, 64, c.ackEvery, &sent)(conn); err != nil {
				t.Fatalf("device: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("gateway: %v", err)
			}
			if int(acks.Load()) != sent {
				t.Fatalf("gateway saw %d Acks of %d", acks.Load(), sent)
			}
			if c.pending {
				if n := (<-side).looks.Load(); n < c.minLooks || n > c.maxLooks {
					t.Fatalf("%d looks between writes, want %d..%d", n, c.minLooks, c.maxLooks)
				}
			}
		})
	}
}
