package server

import (
	"sync"

	"github.com/fotagate/fotagate/protocol"
)

// Write buffers come from pools of fixed size classes, chosen per session from the chunk the
// handshake negotiated, so the memory an active session holds follows what its device asked
// for: a device that takes 256-byte chunks (its lwIP window is 2 KiB) gets a 2 KiB buffer, one
// that takes 4 KiB chunks gets 16 KiB. Packing several frames into each write still pays: on
// loopback a write syscall (~10 us) costs more than sealing 4 KiB, and frames beyond that would
// only wait in the kernel's send buffer behind the device's small TCP window anyway.
const (
	minWriteClass  = 2 << 10 // the smallest class; a 64-byte-chunk session still gets 24 frames
	framesPerWrite = 4       // a session's class holds at least this many frames when the cap allows
)

// writeBuffers is a set of pools, one per size class: powers of two from minWriteClass up to,
// and always including, the configured cap (Config.WriteBuffer).
type writeBuffers struct {
	classes []int
	pools   []sync.Pool
}

func newWriteBuffers(limit int) *writeBuffers {
	w := &writeBuffers{}
	for c := minWriteClass; c < limit; c *= 2 {
		w.classes = append(w.classes, c)
	}
	w.classes = append(w.classes, limit)
	w.pools = make([]sync.Pool, len(w.classes))
	for i, size := range w.classes {
		w.pools[i].New = func() any { b := make([]byte, size); return &b }
	}
	return w
}

// class is the index of the class for a session of the given chunk: the smallest that holds
// framesPerWrite frames, else the largest (the cap, which always holds one whole frame).
func (w *writeBuffers) class(chunk int) int {
	need := framesPerWrite * (chunk + protocol.DataOverhead)
	for i, size := range w.classes {
		if size >= need {
			return i
		}
	}
	return len(w.classes) - 1
}

// get returns an empty buffer of the class for chunk; give it back with put.
func (w *writeBuffers) get(chunk int) *[]byte { return w.pools[w.class(chunk)].Get().(*[]byte) }

// put returns a buffer from get to the pool of its class.
func (w *writeBuffers) put(b *[]byte) {
	for i, size := range w.classes {
		if size == cap(*b) {
			w.pools[i].Put(b)
			return
		}
	}
}
