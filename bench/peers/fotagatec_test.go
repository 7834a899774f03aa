package peers

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCBuildForTakesTheSmallestBuildThatHoldsTheChunk(t *testing.T) {
	for _, c := range []struct {
		chunk, build int
		announce     bool
	}{
		{64, 64, false}, {65, 256, true}, {128, 256, true}, {256, 256, false},
		{512, 512, false}, {1024, 1024, false}, {1025, 4096, true}, {2048, 4096, true}, {4096, 4096, false},
	} {
		build, announce, ok := cBuildFor(c.chunk)
		if !ok || build != c.build || announce != c.announce {
			t.Errorf("chunk %d: build %d announce %v ok %v, want build %d announce %v", c.chunk, build, announce, ok, c.build, c.announce)
		}
	}
	if _, _, ok := cBuildFor(4097); ok {
		t.Error("a 4097-byte chunk has a build")
	}
	if err := (FotagateC{}).Check(8192); !errors.Is(err, ErrChunkUnsupported) {
		t.Errorf("8192-byte chunks: %v, want ErrChunkUnsupported", err)
	}
}

// A chunk below its build's limit is announced by the device (--max-payload): the gateway
// then sends exactly that chunk, which the meter sees as data frames of 128 + 19 bytes.
// Counted in all the gateway sent: the first 16 KiB of frames go out behind the Offer,
// before the Accept that marks the meter's end of the handshake (PROTOCOL.md 4.4), and a
// 256-byte chunk would still fall short (160 frames of 275 bytes).
func TestFotagateCAnnouncesAChunkBelowItsBuild(t *testing.T) {
	img := make([]byte, 40<<10)
	ss := &sessions{ch: make(chan struct{}, 4)}
	srv, err := (FotagateC{}).Serve("127.0.0.1:0", img, NewMeter(ss.add))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := (FotagateC{}).Fetch(ctx, FetchConfig{Addr: srv.Addr(), Chunk: 128, FlashTiming: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Image) != len(img) || got.Elapsed <= 0 {
		t.Fatalf("got %d bytes in %v", len(got.Image), got.Elapsed)
	}
	select {
	case <-ss.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never ended the session")
	}
	// 320 data frames of 128 bytes, each with 19 bytes of header and tag.
	if data := ss.s[0].BytesOut; data < int64(len(img)/128*(128+19)) {
		t.Errorf("%d bytes of data frames for %d bytes in 128-byte chunks", data, len(img))
	}
}
