package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// Tests of the streaming path: write buffers from the pool, the transfer on its own
// goroutine, the buffer given back before the Report.

// slowFetch is fetch for a device that reads through a small socket receive buffer, pausing
// every few frames, and checks that every payload starts where the previous one ended.
func slowFetch(addr, id string, key [32]byte, chunk int) ([]byte, error) {
	d := net.Dialer{Control: setSockopt(syscall.SO_RCVBUF, 4096)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dc, offer, err := deviceSession(c, id, key, 1, chunk, 3)
	if err != nil {
		return nil, err
	}
	var img []byte
	for i := 0; ; i++ {
		if i%16 == 15 {
			time.Sleep(2 * time.Millisecond) // a flash write
		}
		p, off, final, err := dc.Next()
		if err != nil {
			return img, err
		}
		if int(off) != len(img) {
			return img, fmt.Errorf("payload at %d after %d bytes", off, len(img))
		}
		img = append(img, p...)
		if final {
			if sha256.Sum256(img) != offer.Manifest.Digest {
				return img, protocol.ErrDigestMismatch
			}
			return img, dc.Report(protocol.CodeOK, uint32(len(img)))
		}
	}
}

func TestSlowDeviceGetsEveryByteInOrder(t *testing.T) {
	data := randomBytes(96<<10, 11)
	devs := devMap{"slow": {Class: "esp8266-4m", PSK: psk(1)}}
	_, addr, ev := start(t, Config{}, devs, newImage(data, 3))
	for _, chunk := range []int{64, 1024, 4096} {
		got, err := slowFetch(addr, "slow", psk(1), chunk)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("chunk %d: %d bytes, %v", chunk, len(got), err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ev.count(EventReport, "ok") < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d ok reports recorded, want 3", ev.count(EventReport, "ok"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cutFetch takes the offered image until it holds at least cutAt bytes, then drops the
// connection with a reset, as a device losing power would.
func cutFetch(addr, id string, key [32]byte, chunk, cutAt int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dc, _, err := deviceSession(c, id, key, 1, chunk, 4)
	if err != nil {
		return err
	}
	for n := 0; n < cutAt; {
		p, _, _, err := dc.Next()
		if err != nil {
			return err
		}
		n += len(p)
	}
	c.(*net.TCPConn).SetLinger(0) // close with a reset, unread data and all
	return nil
}

func TestCutMidWriteLosesNothingForOtherSessions(t *testing.T) {
	data := randomBytes(512<<10, 12)
	devs := devMap{}
	for i := range 8 {
		devs[fmt.Sprint("dev-", i)] = Device{Class: "esp8266-4m", PSK: psk(i)}
	}
	s, addr, ev := start(t, Config{}, devs, newImage(data, 3))
	for round := range 2 { // the second round reuses whatever buffers the first gave back
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				chunk := []int{64, 1024, 4096, 256}[i%4]
				if i%3 == 0 {
					if err := cutFetch(addr, fmt.Sprint("dev-", i), psk(i), chunk, 100<<10+i*1000); err != nil {
						errs <- fmt.Errorf("round %d, cut device %d: %v", round, i, err)
					}
					return
				}
				got, err := fetch(addr, fmt.Sprint("dev-", i), psk(i), chunk, 1)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("round %d, device %d: %d bytes, %v", round, i, len(got), err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	waitSessions(t, s, 0, 20*time.Second)
	if ok, failed := ev.count(EventReport, "ok"), ev.count(EventFailed, ""); ok != 10 || failed != 6 {
		t.Fatalf("%d ok reports and %d failed sessions, want 10 and 6", ok, failed)
	}
}

func recvLowat(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return v
}

// tcpPeers is an accepted loopback connection and its dialling end.
func tcpPeers(t *testing.T) (gw, dev net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			c = nil
		}
		peer <- c
	}()
	gw, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	if dev = <-peer; dev == nil {
		t.Fatal("dial failed")
	}
	t.Cleanup(func() { dev.Close() })
	return gw, dev
}

// readPendingAll reads what ReadPending hands over until it has want bytes.
func readPendingAll(t *testing.T, ic *idleConn, want int) []byte {
	t.Helper()
	buf := make([]byte, 64)
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); len(got) < want; time.Sleep(time.Millisecond) {
		n, err := ic.ReadPending(buf)
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("after %d of %d bytes: %v", len(got), want, err)
		}
		got = append(got, buf[:n]...)
	}
	return got
}

// ReadPending reads what has arrived without waiting; once the device's frames come, the
// kernel gathers them (SO_RCVLOWAT) instead of waking the poller for each, until the Final
// is out, after which a Report gets through alone. The Accept gets through alone too: the
// mark is down until frames come after it.
func TestReadPendingGathersAcksOnceTheyComeAndTheReportGetsThroughAlone(t *testing.T) {
	c, dev := tcpPeers(t)
	ic := &idleConn{Conn: c, idle: time.Minute}
	ic.findSocket()
	ic.AcceptOpened()
	buf := make([]byte, 64)
	t0 := time.Now()
	if n, err := ic.ReadPending(buf); n != 0 || err != nil {
		t.Fatalf("nothing sent: %d bytes, %v; want 0 and no error", n, err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("nothing sent: ReadPending waited %v", d)
	}
	if got := recvLowat(t, c); ic.gathering || got > 1 {
		t.Fatalf("SO_RCVLOWAT %d before any frame came (gathering %v), want the default", got, ic.gathering)
	}
	dev.Write([]byte("ack"))
	if got := readPendingAll(t, ic, 3); string(got) != "ack" {
		t.Fatalf("read %q, want the peer's %q", got, "ack")
	}
	if got := recvLowat(t, c); !ic.gathering || got != 1024 {
		t.Fatalf("SO_RCVLOWAT %d once frames came (gathering %v), want 1 KiB", got, ic.gathering)
	}
	ic.FinalWritten()
	if got := recvLowat(t, c); got != 24 {
		t.Fatalf("SO_RCVLOWAT %d after the Final, want a Report frame (24)", got)
	}
	dev.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		n, err := ic.ReadPending(buf)
		if errors.Is(err, io.EOF) && n == 0 {
			break
		}
		if err != nil || n != 0 || time.Now().After(deadline) {
			t.Fatalf("after the peer's close: %d bytes, %v; want io.EOF", n, err)
		}
	}

	// An image inside the early window: the Final goes out before any Ack, and the mark must
	// stay down for the Report.
	c2, dev2 := tcpPeers(t)
	ic2 := &idleConn{Conn: c2, idle: time.Minute}
	ic2.findSocket()
	ic2.FinalWritten()
	ic2.AcceptOpened()
	dev2.Write([]byte("ack"))
	readPendingAll(t, ic2, 3)
	if got := recvLowat(t, c2); ic2.gathering || got > 1 {
		t.Fatalf("SO_RCVLOWAT %d after a Final before any Ack (gathering %v), want the default", got, ic2.gathering)
	}

	// A connection without a socket (here a pipe) never has anything pending.
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	pc := &idleConn{Conn: p1, idle: time.Minute}
	pc.findSocket()
	pc.AcceptOpened()
	if n, err := pc.ReadPending(buf); n != 0 || err != nil || pc.raw != nil {
		t.Fatalf("pipe: %d bytes, %v (socket %v); want 0 and no error", n, err, pc.raw != nil)
	}
	pc.FinalWritten()
	if pc.gathering {
		t.Fatal("gathering on a connection without a socket")
	}
}

// The device's Acks are read while the image is still going out, not only once the Final
// is: its progress shows while it downloads. The gateway's send buffer and the device's
// receive buffer are small, as over a real link, so the gateway is still writing when the
// Acks come.
func TestProgressShowsWhileTheImageGoesOut(t *testing.T) {
	data := randomBytes(1<<20, 17)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	ln, err := sndBufListener(t, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	_, ev := serveOn(t, Config{}, devs, newImage(data, 3), ln)
	c, err := dialRcvBuf(ln.Addr().String(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dc, _, err := deviceSession(c, "d", psk(1), 1, 1024, 6)
	if err != nil {
		t.Fatal(err)
	}
	progress := 0
	n := readAcking(t, dc, func(n int) {
		if n == 768<<10 {
			progress = ev.count(EventProgress, "")
		}
	})
	// 23 Acks went out by then, and the gateway, a few dozen KiB ahead, is still writing:
	// all but the last few (it looks every 256 KiB it writes) are in.
	if progress < 12 {
		t.Fatalf("%d progress events at 3/4 of the image, want most of the 23 Acks sent", progress)
	}
	if err := dc.Report(protocol.CodeOK, uint32(n)); err != nil {
		t.Fatal(err)
	}
}

// The spec leaves the Ack rate to the device: one that Acks every frame of 64 bytes, a
// quarter as many bytes back as it gets, must still get the whole image, and every Ack must
// show as progress, though the gateway reads the Acks between its writes
// (protocol.PendingReader) until they come that fast. Here the gateway's send buffer is large
// (its blocked write waits for the device to read much) and the device's small (its Ack
// writes block early).
func TestDeviceAckingEveryFrameGetsTheWholeImage(t *testing.T) {
	data := randomBytes(4<<20, 19)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	ln, err := sndBufListener(t, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	_, ev := serveOn(t, Config{IdleTimeout: 5 * time.Second}, devs, newImage(data, 3), ln)
	d := net.Dialer{Control: setSockopt(syscall.SO_SNDBUF, 4096)}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dc, _, err := deviceSession(c, "d", psk(1), 1, 64, 7)
	if err != nil {
		t.Fatal(err)
	}
	n, acks := 0, 0
	for final := false; !final; {
		var p []byte
		if p, _, final, err = dc.Next(); err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		n += len(p)
		if !final {
			if err := dc.Ack(uint32(n)); err != nil {
				t.Fatalf("Ack after %d bytes: %v", n, err)
			}
			acks++
		}
	}
	if err := dc.Report(protocol.CodeOK, uint32(n)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ev.count(EventReport, "ok") != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no ok Report recorded")
		}
	}
	if got := ev.count(EventProgress, ""); got != acks {
		t.Fatalf("%d progress events, want one per Ack (%d)", got, acks)
	}
}

// readAcking reads the stream to its Final, Acking every 32 KiB (devicelib's default), and
// returns the bytes read; after each payload it calls each, if set, with the count so far.
func readAcking(t *testing.T, dc *protocol.DeviceConn, each func(n int)) int {
	t.Helper()
	n := 0
	for final := false; !final; {
		p, _, fin, err := dc.Next()
		if err != nil {
			t.Fatal(err)
		}
		n, final = n+len(p), fin
		if n%(32<<10) == 0 && !final {
			if err := dc.Ack(uint32(n)); err != nil {
				t.Fatal(err)
			}
		}
		if each != nil {
			each(n)
		}
	}
	return n
}

// setSockopt is a Control function (net.Dialer, net.ListenConfig) that sets one integer
// socket option before the connect or listen: a buffer size the peer must see from the
// start.
func setSockopt(opt, v int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, v)
		}); err != nil {
			return err
		}
		return serr
	}
}

// sndBufListener listens on loopback with SO_SNDBUF set on the accepted sockets.
func sndBufListener(t *testing.T, n int) (net.Listener, error) {
	lc := ListenConfig()
	lc.Control = setSockopt(syscall.SO_SNDBUF, n)
	return lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
}

// dialRcvBuf dials addr with SO_RCVBUF set before the connect, so the window the device
// announces is small from the start.
func dialRcvBuf(addr string, n int) (net.Conn, error) {
	d := net.Dialer{Control: setSockopt(syscall.SO_RCVBUF, n)}
	return d.Dial("tcp", addr)
}

// A device that reports and then waits for the gateway to hang up must not wait for its idle
// timeout: its Report alone wakes the gateway, which records it and closes.
func TestReportWakesTheGatewayWithoutAClose(t *testing.T) {
	data := randomBytes(200<<10, 13)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	_, addr, ev := start(t, Config{IdleTimeout: time.Minute}, devs, newImage(data, 3))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dc, _, err := deviceSession(c, "d", psk(1), 1, 1024, 5)
	if err != nil {
		t.Fatal(err)
	}
	n := readAcking(t, dc, nil)
	if err := dc.Report(protocol.CodeOK, uint32(n)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the Report: %v, want the gateway to close", err)
	}
	if ev.count(EventReport, "ok") != 1 {
		t.Fatalf("no ok Report recorded before the close (after %v)", time.Since(t0))
	}
}

// The idle timeout is the longest silence a streaming device is allowed (Config.IdleTimeout,
// devices.idle_timeout): the deadline moves only now and then (idleConn.extend), but never so
// that a device is cut before it has been silent that long.
func TestIdleTimeoutCutsNoSoonerThanItsLengthAfterTheLastRead(t *testing.T) {
	const idle = 2 * time.Second
	c, dev := tcpPeers(t)
	ic := &idleConn{Conn: c, idle: idle}
	ic.AcceptOpened() // the deadline moves now
	// Well within the eighth of the timeout during which reads leave the deadline alone (on a
	// machine so slow that this sleep overruns it, the read moves it and the test proves less).
	time.Sleep(idle / 40)
	dev.Write([]byte{1})
	buf := make([]byte, 1)
	if _, err := ic.Read(buf); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	_, err := ic.Read(buf) // the device says nothing more
	silent := time.Since(last)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent device: %v, want the deadline", err)
	}
	if silent < idle {
		t.Fatalf("cut after %v of silence, before the %v idle timeout", silent, idle)
	}
}
