package protocol_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// cutConn closes the connection after limit bytes have been written through it.
type cutConn struct {
	net.Conn
	left atomic.Int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	left := c.left.Add(-int64(len(p)))
	if left < 0 {
		keep := int64(len(p)) + left
		if keep > 0 {
			c.Conn.Write(p[:keep])
		}
		c.Conn.Close()
		return int(max(keep, 0)), io.ErrClosedPipe
	}
	return c.Conn.Write(p)
}

// serveOnce accepts one connection on ln and runs the gateway role, optionally cutting the
// stream after cut bytes. It returns the gateway's error on done.
func serveOnce(t *testing.T, ln net.Listener, gc *protocol.GatewayConfig, img []byte, cut int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		var rw net.Conn = c
		if cut > 0 {
			cc := &cutConn{Conn: c}
			cc.left.Store(cut)
			rw = cc
		}
		gconn := protocol.NewGatewayConn(rw, gc)
		m := manifestFor(img, 2)
		// As the gateway server does: the first frames go out behind the Offer, and Stream
		// reads the Accept.
		_, err = gconn.Offer(lookupOne("dev-1", testPSK), func(*protocol.Hello) (*protocol.Offer, error) {
			return &protocol.Offer{Status: protocol.StatusOffer, Manifest: m}, nil
		})
		if err != nil {
			done <- err
			return
		}
		rep, err := gconn.Stream(bytes.NewReader(img), make([]byte, 16<<10), nil)
		if err == nil && rep.Code != protocol.CodeOK {
			err = &protocol.PeerError{Code: rep.Code, Authenticated: true}
		}
		done <- err
	}()
	return done
}

// download runs the device role against addr into flash, resuming from *rp (which it keeps
// up to date), acking every 4 KiB. It verifies the digest before reporting success.
func download(t *testing.T, addr string, maxPayload int, flash []byte, rp *protocol.ResumePoint, boot uint32) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cfg := deviceConfig(maxPayload)
	cfg.BootCounter = boot
	cfg.Rand = newSeeded(byte(boot))
	cfg.Resume = *rp
	dconn, err := protocol.NewDeviceConn(c, cfg)
	if err != nil {
		return err
	}
	offer, err := dconn.Handshake(func(m *protocol.Manifest, start uint32) error {
		if start != rp.Offset || m.Digest != rp.Digest && start != 0 {
			t.Errorf("stream starts at %d; the device holds %d bytes of %x", start, rp.Offset, rp.Digest[:8])
		}
		rp.Digest = m.Digest
		return nil
	})
	if err != nil {
		return err
	}
	durable := &rp.Offset
	lastAck := *durable
	for {
		p, off, final, err := dconn.Next()
		if err != nil {
			return err
		}
		copy(flash[off:], p)
		*durable = off + uint32(len(p))
		if final {
			if sha256.Sum256(flash[:offer.Manifest.Size]) != offer.Manifest.Digest {
				dconn.Report(protocol.CodeDigestMismatch, *durable)
				return protocol.ErrDigestMismatch
			}
			return dconn.Report(protocol.CodeOK, *durable)
		}
		if *durable-lastAck >= 4096 {
			if err := dconn.Ack(*durable); err != nil {
				return err
			}
			lastAck = *durable
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestLoopbackTransferOneMiB(t *testing.T) {
	img := randomImage(1<<20, 42)
	for _, chunk := range []int{64, 256, 512, 1024, 4096} {
		ln := listen(t)
		done := serveOnce(t, ln, gatewayConfig(t, 4096), img, 0)
		flash := make([]byte, len(img))
		var rp protocol.ResumePoint
		if err := download(t, ln.Addr().String(), chunk, flash, &rp, 1); err != nil {
			t.Fatalf("chunk %d: device: %v", chunk, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("chunk %d: gateway: %v", chunk, err)
		}
		if !bytes.Equal(flash, img) {
			t.Fatalf("chunk %d: image differs", chunk)
		}
	}
}

func TestLoopbackCutsResumeToIdenticalImage(t *testing.T) {
	img := randomImage(256<<10, 43)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, chunk := range []int{64, 1024, 4096} {
		flash := make([]byte, len(img))
		var rp protocol.ResumePoint
		durable := &rp.Offset
		cuts := 0
		for attempt := uint32(1); ; attempt++ {
			if attempt > 20 {
				t.Fatalf("chunk %d: not done after 20 attempts", chunk)
			}
			ln := listen(t)
			cut := int64(0)
			if attempt <= 3 { // three cuts at random points of what is left, then finish
				cut = 200 + rng.Int64N(int64(len(img))-int64(*durable))/2
			}
			done := serveOnce(t, ln, gatewayConfig(t, 4096), img, cut)
			before := *durable
			err := download(t, ln.Addr().String(), chunk, flash, &rp, attempt)
			gerr := <-done
			if err == nil {
				if gerr != nil {
					t.Fatalf("gateway: %v", gerr)
				}
				break
			}
			if !errors.Is(err, protocol.ErrTruncated) && !errors.Is(err, io.EOF) && !isNetErr(err) {
				t.Fatalf("chunk %d attempt %d: unexpected device error %v", chunk, attempt, err)
			}
			if *durable < before {
				t.Fatalf("durable offset went back from %d to %d", before, *durable)
			}
			cuts++
		}
		if cuts != 3 || !bytes.Equal(flash, img) {
			t.Fatalf("chunk %d: %d cuts, image equal %v", chunk, cuts, bytes.Equal(flash, img))
		}
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// A small image goes out in one write, so the only look at the device's channel after a write
// is the one after the Final. A device fast enough to report before that look must still be
// counted as a success (it raced and lost about one run in four on 2 cores before the fix).
func TestStreamTakesAReportThatArrivesRightAfterTheFinal(t *testing.T) {
	img := randomImage(3000, 12)
	for i := range 40 {
		ln := listen(t)
		done := serveOnce(t, ln, gatewayConfig(t, 4096), img, 0)
		var rp protocol.ResumePoint
		flash := make([]byte, len(img))
		if err := download(t, ln.Addr().String(), 1024, flash, &rp, uint32(i+1)); err != nil {
			t.Fatalf("run %d: device: %v", i, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("run %d: gateway: %v", i, err)
		}
	}
}
