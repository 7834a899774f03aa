package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// The server sends an offered image's first frames right behind the Offer (PROTOCOL.md
// 4.4), so the first image byte reaches the device one round trip after its Hello; it reads
// the Accept while they go out, and sends nothing more until the Accept is open.

// earlyDevice sends a Hello to addr and reads the Offer; the caller goes on from there.
func earlyDevice(t *testing.T, addr string, chunk int, resume protocol.ResumePoint) (net.Conn, *protocol.DeviceHandshake, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	dh, err := protocol.NewDeviceHandshake(&protocol.DeviceConfig{DeviceID: "d", PSK: psk(1), Class: "esp8266-4m",
		Running: 1, MaxPayload: chunk, BootCounter: 1, Rand: rand.NewChaCha8([32]byte{9}), Resume: resume})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(dh.Hello()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, protocol.FrameBufferSize(chunk))
	frame, err := protocol.ReadFrame(c, buf, protocol.MaxOfferBody)
	if err != nil {
		t.Fatal(err)
	}
	o, err := dh.ReadOffer(frame)
	if err != nil || o.Status != protocol.StatusOffer {
		t.Fatalf("offer %+v, %v", o, err)
	}
	return c, dh, buf
}

func TestFirstFramesArriveBeforeTheAcceptAndResumeWhereTheHelloSays(t *testing.T) {
	data := randomBytes(100<<10, 21)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	_, addr, ev := start(t, Config{}, devs, newImage(data, 3))
	const chunk = 512
	for _, from := range []uint32{0, 40 << 10} {
		resume := protocol.ResumePoint{}
		if from > 0 {
			resume = protocol.ResumePoint{Offset: from, Digest: sha256.Sum256(data)}
		}
		c, dh, buf := earlyDevice(t, addr, chunk, resume)
		if dh.Start() != from {
			t.Fatalf("device expects the stream from %d, want %d", dh.Start(), from)
		}
		// Every early frame arrives while the device has not answered yet.
		var early [][]byte
		for range protocol.EarlyFrames(chunk) {
			f, err := protocol.ReadFrame(c, buf, chunk+protocol.TagSize)
			if err != nil {
				t.Fatalf("from %d: early frame %d: %v", from, len(early), err)
			}
			early = append(early, bytes.Clone(f))
		}
		acc, ds, err := dh.AppendAccept(nil, protocol.CodeOK, from)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(acc); err != nil {
			t.Fatal(err)
		}
		got := append([]byte(nil), data[:from]...)
		for _, f := range early {
			p, _, err := ds.OpenData(f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p...)
		}
		for !ds.Done() {
			f, err := protocol.ReadFrame(c, buf, chunk+protocol.TagSize)
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := ds.OpenData(f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("from %d: image differs", from)
		}
		rep, _ := ds.AppendReport(nil, protocol.CodeOK, uint32(len(data)))
		if _, err := c.Write(rep); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("gateway did not close after the Report: %v", err)
		}
	}
	if ev.count(EventAccepted, "") != 2 || ev.count(EventReport, "ok") != 2 {
		t.Fatalf("events: %d accepted, %d reports ok; want 2 each", ev.count(EventAccepted, ""), ev.count(EventReport, "ok"))
	}
}

// A device that reads the Offer and never answers is a failed handshake: cut at the
// handshake deadline (not the longer idle timeout of a transfer), recorded as such, and the
// gateway sent it nothing past the early window.
func TestSilenceAfterTheOfferIsAFailedHandshake(t *testing.T) {
	data := randomBytes(200<<10, 22)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	_, addr, ev := start(t, Config{HandshakeTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour}, devs, newImage(data, 3))
	c, _, _ := earlyDevice(t, addr, 1024, protocol.ResumePoint{})
	n, err := io.Copy(io.Discard, c) // until the gateway closes
	if err != nil {
		t.Fatalf("after %d bytes: %v; want the gateway to close", n, err)
	}
	if max := int64(protocol.EarlyFrames(1024) * (1024 + protocol.DataOverhead)); n > max {
		t.Fatalf("gateway sent %d bytes to a device that never accepted, at most %d allowed", n, max)
	}
	for deadline := time.Now().Add(10 * time.Second); ev.count(EventHandshakeFailed, "timeout") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake failure recorded; events: %+v", ev.ev)
		}
	}
	if ev.count(EventAccepted, "") != 0 {
		t.Fatal("a session without an Accept was recorded as accepted")
	}
}

// A device that refuses the offer after the early frames arrived is recorded as refusing.
func TestRefusalAfterTheEarlyFramesIsRecorded(t *testing.T) {
	data := randomBytes(200<<10, 23)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	_, addr, ev := start(t, Config{}, devs, newImage(data, 3))
	c, dh, _ := earlyDevice(t, addr, 1024, protocol.ResumePoint{})
	acc, _, err := dh.AppendAccept(nil, protocol.CodeTooLarge, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(acc); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, c) //nolint:errcheck // until the gateway closes
	for deadline := time.Now().Add(10 * time.Second); ev.count(EventRefused, "too_large") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal recorded; events: %+v", ev.ev)
		}
	}
}
