package server

import (
	"net"
	"sync"

	"github.com/fotagate/fotagate/protocol"
)

// Write buffers come from two pools of fixed-size buffers, so the data path allocates nothing:
// small ones (Config.WriteBuffer, at least one frame of protocol.MaxPayload) and large ones
// (Config.MaxWrite). A session packs as many whole frames of its chunk as fit into each
// write. It takes a large buffer when its socket's send buffer has room for more than a small
// one (sendSpace), cut to that room so that write does not block, and a small one otherwise.
//
// Why: a session holds its buffer for as long as a write blocks, and a device that flashes
// slowly (most of them, most of the time) keeps the write blocked behind its small TCP window,
// so that buffer is most of what an active session costs: 16 KiB buffers made a 4 KiB-chunk
// session cost 31 KiB, 4,864-byte ones 14 KiB (BenchmarkSessionMemory). But each write costs
// a syscall (~5-10 us on loopback, BenchmarkOneDevice's plain-tcp floor), as much as sealing
// 8-16 KiB, so a device that keeps up (a fast link, its socket's buffer far from full) gets
// writes of up to 64 KiB (BenchmarkAggregateThroughput, 100 devices of 1 MiB: 1.3 ms of
// server CPU per MiB with them, 1.9-2.0 without, smallwrites).
//
// The default small buffer, 4,864 bytes, is the Go allocator's size class that holds one
// 4 KiB frame (4,115 bytes): a smaller one would cost as much. It holds 58 frames of 64
// bytes, 4 of 1 KiB, 2 of 2 KiB, 1 of 4 KiB. A large buffer goes back to its pool as soon as
// the socket has no room for more than a small one; whichever buffer a session holds goes
// back as soon as the Final is written, before the session waits for the device's Report.
type writeBuffers struct {
	small, large pool
}

// pool is one size of buffers.
type pool struct {
	size int
	p    sync.Pool
}

// newWriteBuffers makes the pools for small buffers of small bytes, which must hold one frame
// of protocol.MaxPayload (Config.fill sees to it), and large ones of large bytes (none when
// large is not above small).
func newWriteBuffers(small, large int) *writeBuffers {
	w := &writeBuffers{}
	w.small.size = small
	w.small.p.New = func() any { b := make([]byte, small); return &b }
	w.large.size = max(large, small)
	w.large.p.New = func() any { b := make([]byte, w.large.size); return &b }
	return w
}

// get returns a buffer; give it back with put.
func (p *pool) get() *[]byte { return p.p.Get().(*[]byte) }

// put returns a buffer from get to the pool; anything else is dropped.
func (p *pool) put(b *[]byte) {
	if cap(*b) == p.size {
		p.p.Put(b)
	}
}

// writeSize is the most a session of the given chunk puts into a write from a buffer of
// size bytes: the whole frames that fit.
func writeSize(size, chunk int) int {
	frame := chunk + protocol.DataOverhead
	return max(1, size/frame) * frame
}

// sessionBuffers lends one session its write buffers (protocol.WriteBuffers).
type sessionBuffers struct {
	w    *writeBuffers
	conn net.Conn
	held *[]byte // the buffer lent last, nil when none
	from *pool
	room int // bytes the socket takes without blocking, less the large buffers lent since
}

// Next gives back the previous write's buffer and lends the next: a large one when the
// socket's send buffer has room for more than a small one, cut to that room (the write then
// does not block, so the large buffer is not held while a slow device reads), else a small
// one, kept from write to write.
//
// Asking the kernel for the room costs two syscalls, as much as sealing 2-4 KiB, so it is
// asked only when what it said last is used up: the room only grows as the peer acknowledges,
// except by what the session writes itself, which Next counts off (all of the buffer it
// lends, at least what the write holds). On loopback, where the send buffer starts at about
// 1.3 MB, one question then covers a whole image of several hundred KiB.
func (b *sessionBuffers) Next([]byte) []byte {
	want, n := &b.w.small, b.w.small.size
	if large := b.w.large.size; large > b.w.small.size {
		if b.room < large {
			b.room = sendSpace(b.conn)
		}
		if b.room > b.w.small.size {
			want, n = &b.w.large, min(large, b.room)
			b.room -= n
		}
	}
	if b.held == nil || b.from != want {
		b.Release(nil)
		b.held, b.from = want.get(), want
	}
	return (*b.held)[:n]
}

// Release gives back the buffer lent last.
func (b *sessionBuffers) Release([]byte) {
	if b.held != nil {
		b.from.put(b.held)
		b.held, b.from = nil, nil
	}
}
