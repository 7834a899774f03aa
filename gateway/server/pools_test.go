package server

import (
	"fmt"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

func TestWriteBufferClassFollowsTheNegotiatedChunk(t *testing.T) {
	frame := func(chunk int) int { return chunk + protocol.DataOverhead }
	for _, c := range []struct {
		limit, chunk, size int
	}{
		{16 << 10, 64, 4 * frame(512)},
		{16 << 10, 256, 4 * frame(512)},
		{16 << 10, 512, 4 * frame(512)},
		{16 << 10, 513, 4 * frame(1024)},
		{16 << 10, 1024, 4 * frame(1024)},
		{16 << 10, 2048, 4 * frame(2048)},
		{16 << 10, 4096, 16 << 10}, // the cap: three frames
		{64 << 10, 4096, 4 * frame(4096)},
		{frame(4096), 1024, frame(4096)}, // the smallest cap still holds one frame of any chunk
		{frame(4096), 4096, frame(4096)},
	} {
		t.Run(fmt.Sprintf("limit=%d/chunk=%d", c.limit, c.chunk), func(t *testing.T) {
			w := newWriteBuffers(c.limit)
			b := w.get(c.chunk)
			if len(*b) != c.size {
				t.Errorf("buffer of %d bytes, want %d", len(*b), c.size)
			}
			if n := len(*b) / frame(c.chunk); n < 1 || n < framesPerWrite && len(*b) < c.limit {
				t.Errorf("buffer holds %d frames", n)
			}
			w.put(b)
		})
	}
}

func TestWriteBufferGoesBackToItsOwnClass(t *testing.T) {
	w := newWriteBuffers(16 << 10)
	w.put(w.get(256))
	w.put(&[]byte{}) // not from the pools: dropped
	if b := w.get(4096); cap(*b) != 16<<10 {
		t.Fatalf("4 KiB chunk got a %d-byte buffer", cap(*b))
	}
	if b := w.get(256); cap(*b) != 4*(512+protocol.DataOverhead) {
		t.Fatalf("256-byte chunk got a %d-byte buffer", cap(*b))
	}
}
