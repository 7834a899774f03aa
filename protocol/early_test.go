package protocol_test

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// The first image byte goes out behind the Offer (PROTOCOL.md 4.4), from where the Hello's
// resume point says, and no further than the early window until the Accept is open.

func TestEarlyWindowHoldsFramesUntilTheAccept(t *testing.T) {
	img := randomImage(100_000, 5)
	for _, chunk := range []int{64, 1000, 4096} {
		dh, gh := offerTo(t, deviceConfig(chunk), gatewayConfig(t, 4096), manifestFor(img, 2))
		gs := gh.Session()
		var early [][]byte
		for gs.MayAppend() {
			f, err := gs.AppendFrame(nil, bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			early = append(early, f)
		}
		if want := protocol.EarlyFrames(chunk); len(early) != want || want*chunk > protocol.EarlyPayload && want > 1 {
			t.Fatalf("chunk %d: %d frames before the Accept, want %d", chunk, len(early), want)
		}
		if _, err := gs.AppendFrame(nil, bytes.NewReader(img)); err == nil {
			t.Fatalf("chunk %d: a frame past the early window before the Accept", chunk)
		}
		acc, ds, err := dh.AppendAccept(nil, protocol.CodeOK, dh.Start())
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err := gh.ReadAccept(acc); err != nil || got != gs || !gs.Accepted() {
			t.Fatalf("chunk %d: Accept: %v", chunk, err)
		}
		var out []byte
		for _, f := range append(early, frames(t, gs, img)...) {
			p, _, err := ds.OpenData(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p...)
		}
		if !bytes.Equal(out, img) || !ds.Done() {
			t.Fatalf("chunk %d: image differs", chunk)
		}
	}
}

func TestResumePointDecidesWhereTheStreamStarts(t *testing.T) {
	img := randomImage(5000, 6)
	m := manifestFor(img, 2)
	other := *m
	other.Digest[0] ^= 1
	sameID := *m
	sameID.Digest[31] ^= 1
	cases := []struct {
		name   string
		resume protocol.ResumePoint
		start  uint32
		policy error // the device's answer to the offer
	}{
		{"nothing to resume", protocol.ResumePoint{}, 0, nil},
		{"this image", protocol.ResumePoint{Offset: 3000, Digest: m.Digest}, 3000, nil},
		{"all of this image", protocol.ResumePoint{Offset: 5000, Digest: m.Digest}, 5000, nil},
		{"another image", protocol.ResumePoint{Offset: 3000, Digest: other.Digest}, 0, nil},
		{"past the image's end", protocol.ResumePoint{Offset: 5001, Digest: m.Digest}, 0, nil},
		{"another image with the same ID", protocol.ResumePoint{Offset: 3000, Digest: sameID.Digest}, 3000, protocol.ErrStaleResume},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dc := deviceConfig(1024)
			dc.Resume = c.resume
			dh, gh := offerTo(t, dc, gatewayConfig(t, 4096), m)
			if got := gh.Session().Start(); got != c.start {
				t.Fatalf("gateway starts at %d, want %d", got, c.start)
			}
			if dh.Start() != c.start {
				t.Fatalf("device expects %d, gateway starts at %d", dh.Start(), c.start)
			}
			policy := dc.Check(m)
			if !errors.Is(policy, c.policy) || (c.policy == nil) != (policy == nil) {
				t.Fatalf("policy %v, want %v", policy, c.policy)
			}
			if policy != nil {
				if protocol.CodeFor(policy) != protocol.CodeDeclined {
					t.Fatalf("refused with code %d, want declined", protocol.CodeFor(policy))
				}
				return
			}
			// An Accept for any other offset is refused by both sides.
			if _, _, err := dh.AppendAccept(nil, protocol.CodeOK, c.start+1); err == nil {
				t.Fatal("device accepted at an offset the gateway does not stream from")
			}
		})
	}
}

// streamEnd is how the gateway of earlyPipe ended its Stream.
type streamEnd struct {
	msg     protocol.DeviceMessage
	err     error
	sent    uint32 // image bytes it had sealed
	accepts int    // Accepts passed to its onAck
}

// earlyPipe runs a gateway that offers img on one end of a net.Pipe, and streams it as the
// gateway server does (Offer, then Stream: the first frames behind the Offer, the Accept read
// by the stream), with an 8 KiB write buffer. On the other end it sends the Hello of a device
// of the given chunk and opens the gateway's Offer; the caller goes on from there, with buf, a
// frame buffer for that chunk. A pipe has no buffer: the gateway's writes wait for the
// device's reads.
func earlyPipe(t *testing.T, img []byte, chunk int) (dconn net.Conn, dh *protocol.DeviceHandshake, buf []byte, end <-chan streamEnd) {
	t.Helper()
	m := manifestFor(img, 2)
	dconn, gconn := net.Pipe()
	t.Cleanup(func() { dconn.Close() })
	dconn.SetDeadline(time.Now().Add(20 * time.Second))
	gconn.SetDeadline(time.Now().Add(20 * time.Second))
	ends := make(chan streamEnd, 1)
	go func() {
		defer gconn.Close()
		gc := protocol.NewGatewayConn(gconn, gatewayConfig(t, 4096))
		if _, err := gc.Offer(lookupOne("dev-1", testPSK), func(*protocol.Hello) (*protocol.Offer, error) {
			return &protocol.Offer{Status: protocol.StatusOffer, Manifest: m}, nil
		}); err != nil {
			ends <- streamEnd{err: err}
			return
		}
		var e streamEnd
		e.msg, e.err = gc.Stream(bytes.NewReader(img), make([]byte, 8<<10), func(msg protocol.DeviceMessage) {
			if msg.Type == protocol.TypeAccept {
				e.accepts++
			}
		})
		e.sent = gc.Session().Sent()
		ends <- e
	}()
	dh, err := protocol.NewDeviceHandshake(deviceConfig(chunk))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dconn.Write(dh.Hello()); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, protocol.FrameBufferSize(chunk))
	frame, err := protocol.ReadFrame(dconn, buf, protocol.MaxOfferBody)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dh.ReadOffer(frame); err != nil {
		t.Fatal(err)
	}
	return dconn, dh, buf, ends
}

// Over a connection: the device reads the Offer and the first data frames before it sends
// its Accept, so the image's first byte is on its way one round trip after the Hello.
func TestStreamSendsTheFirstFramesBeforeTheAccept(t *testing.T) {
	img := randomImage(200_000, 8)
	dconn, dh, buf, gw := earlyPipe(t, img, 1024)
	// Read every early frame before answering: net.Pipe has no buffer, so the gateway can only
	// have written them if it did not wait for the Accept.
	var early [][]byte
	for range protocol.EarlyFrames(1024) {
		f, err := protocol.ReadFrame(dconn, buf, 1024+protocol.TagSize)
		if err != nil {
			t.Fatalf("early frame %d: %v", len(early), err)
		}
		early = append(early, bytes.Clone(f))
	}
	acc, ds, err := dh.AppendAccept(nil, protocol.CodeOK, dh.Start())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dconn.Write(acc); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, f := range early {
		p, _, err := ds.OpenData(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	for !ds.Done() {
		f, err := protocol.ReadFrame(dconn, buf, 1024+protocol.TagSize)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := ds.OpenData(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	rep, _ := ds.AppendReport(nil, protocol.CodeOK, uint32(len(img)))
	if _, err := dconn.Write(rep); err != nil {
		t.Fatal(err)
	}
	if e := <-gw; e.err != nil || e.msg.Type != protocol.TypeReport || e.accepts != 1 {
		t.Fatalf("gateway: %+v; want a Report and one Accept before it", e)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("image differs")
	}
}

// A device that refuses the offer after the early frames went out ends the stream with its
// authenticated code, and the gateway has sent nothing past the window.
func TestStreamEndsOnARefusalAfterTheEarlyFrames(t *testing.T) {
	img := randomImage(200_000, 9)
	dconn, dh, buf, gw := earlyPipe(t, img, 256)
	acc, _, _ := dh.AppendAccept(nil, protocol.CodeTooLarge, 0)
	// The gateway is writing its early frames into the pipe: take them while refusing.
	go func() {
		for {
			if _, err := protocol.ReadFrame(dconn, buf, 256+protocol.TagSize); err != nil {
				return
			}
		}
	}()
	if _, err := dconn.Write(acc); err != nil {
		t.Fatal(err)
	}
	r := <-gw
	var pe *protocol.PeerError
	if !errors.As(r.err, &pe) || !pe.Authenticated || pe.Code != protocol.CodeTooLarge || r.msg.Type != protocol.TypeAccept {
		t.Fatalf("stream ended with %+v, %v; want the device's too_large", r.msg, r.err)
	}
	if r.sent > uint32(protocol.EarlyFrames(256)*256) {
		t.Fatalf("gateway sealed %d bytes for a device that never accepted", r.sent)
	}
}
