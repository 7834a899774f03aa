package peers

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func TestCoAPDeviceStopsAtItsBudgetAndTheServerStopsSending(t *testing.T) {
	img := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{5}).Read(img)
	for _, tc := range []struct {
		name        string
		chunk       int
		budget      int
		wantLen     int
		wantStopped bool
	}{
		{"whole blocks", 512, 4096, 4096, true},
		{"rounded up to a whole block", 512, 4000, 4096, true},
		{"budget at the image size", 1024, len(img), len(img), false},
		{"no budget", 1024, 0, len(img), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := &sessions{ch: make(chan struct{}, 4)}
			srv, err := CoAP{}.Serve("127.0.0.1:0", img, NewMeter(ss.add))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := CoAP{}.Fetch(ctx, FetchConfig{Addr: srv.Addr(), Chunk: tc.chunk, ImageSize: len(img), Budget: tc.budget})
			if err != nil {
				t.Fatal(err)
			}
			if got.Stopped != tc.wantStopped || !bytes.Equal(got.Image, img[:tc.wantLen]) {
				t.Fatalf("stopped %v with %d bytes (equal to the image's prefix: %v), want stopped %v with %d",
					got.Stopped, len(got.Image), bytes.Equal(got.Image, img[:min(len(got.Image), len(img))]), tc.wantStopped, tc.wantLen)
			}
			select {
			case <-ss.ch:
			case <-time.After(10 * time.Second):
				t.Fatal("the server never ended the session")
			}
			// The server sent the blocks asked for and no more: a stop-and-wait server has
			// nothing in flight beyond the block the device holds.
			s := ss.s[0]
			if s.BytesOut-s.HandshakeOut < int64(tc.wantLen) || s.BytesOut-s.HandshakeOut > int64(tc.wantLen)*2 {
				t.Errorf("server sent %d bytes of data for %d delivered", s.BytesOut-s.HandshakeOut, tc.wantLen)
			}
		})
	}
}

func TestOnlyStopAndWaitPeersMayBeMeasuredOnAPrefix(t *testing.T) {
	for _, p := range All() {
		if got, want := IsStopAndWait(p), p.Name() == "coap-dtls"; got != want {
			t.Errorf("%s: stop-and-wait %v, want %v", p.Name(), got, want)
		}
	}
}
