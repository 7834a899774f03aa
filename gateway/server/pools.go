package server

import (
	"sync"

	"github.com/fotagate/fotagate/protocol"
)

// Write buffers come from pools of fixed size classes, chosen per session from the chunk the
// handshake negotiated, so the memory an active session holds follows what its device asked
// for. A class holds framesPerWrite whole frames of the largest chunk it serves (512, 1024,
// 2048 or 4096 bytes; smaller chunks share the first class): 2,124 bytes for a device taking
// 256-byte chunks, 4,172 for 1 KiB chunks, and the cap (Config.WriteBuffer, 16 KiB by
// default: three frames) for 4 KiB chunks.
//
// Why several frames per write: on loopback a write syscall (~10 us) costs more than sealing
// 4 KiB, so one write per frame would spend most of the server's CPU in the kernel. Why not
// more: frames beyond a few would only wait in the kernel's send buffer behind the device's
// small TCP window (2-6 KiB on an ESP8266), while the buffer is held for the whole transfer.
// Four frames of 1 KiB instead of a 16 KiB buffer is what keeps an active session near
// 13 KiB (BenchmarkSessionMemory).
const (
	framesPerWrite = 4
	minClassChunk  = 512
)

// writeBuffers is a set of pools, one per size class.
type writeBuffers struct {
	classes []int
	pools   []sync.Pool
}

// newWriteBuffers makes the classes for a cap of limit bytes, which must hold one frame of
// protocol.MaxPayload (Config.fill sees to it).
func newWriteBuffers(limit int) *writeBuffers {
	w := &writeBuffers{}
	for chunk := minClassChunk; chunk <= protocol.MaxPayload; chunk *= 2 {
		size := min(framesPerWrite*(chunk+protocol.DataOverhead), limit)
		if n := len(w.classes); n == 0 || size > w.classes[n-1] {
			w.classes = append(w.classes, size)
		}
	}
	w.pools = make([]sync.Pool, len(w.classes))
	for i, size := range w.classes {
		w.pools[i].New = func() any { b := make([]byte, size); return &b }
	}
	return w
}

// class is the index of the class for a session of the given chunk: the smallest that holds
// framesPerWrite frames, else the largest, which holds at least one.
func (w *writeBuffers) class(chunk int) int {
	need := framesPerWrite * (chunk + protocol.DataOverhead)
	for i, size := range w.classes {
		if size >= need {
			return i
		}
	}
	return len(w.classes) - 1
}

// get returns a buffer of the class for chunk; give it back with put.
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
