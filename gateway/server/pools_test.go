package server

import (
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

func TestWriteSizePacksWholeFramesOfTheNegotiatedChunk(t *testing.T) {
	frame := func(chunk int) int { return chunk + protocol.DataOverhead }
	def := DefaultConfig()
	for _, c := range []struct {
		size, chunk, frames int
	}{
		{def.WriteBuffer, 64, 58},
		{def.WriteBuffer, 256, 17},
		{def.WriteBuffer, 1024, 4},
		{def.WriteBuffer, 2048, 2},
		{def.WriteBuffer, 4096, 1},
		{def.MaxWrite, 1024, 62},
		{def.MaxWrite, 4096, 15},
		{frame(4096), 64, frame(4096) / frame(64)},
		{frame(4096), 4096, 1}, // the smallest buffer still holds one frame of any chunk
	} {
		t.Run(fmt.Sprintf("size=%d/chunk=%d", c.size, c.chunk), func(t *testing.T) {
			if got := writeSize(c.size, c.chunk); got != c.frames*frame(c.chunk) {
				t.Errorf("write of %d bytes, want %d frames (%d bytes)", got, c.frames, c.frames*frame(c.chunk))
			}
		})
	}
}

func TestDefaultWriteBufferHoldsFourFramesOfOneKiB(t *testing.T) {
	var cfg Config
	cfg.fill()
	if n := writeSize(cfg.WriteBuffer, 1024) / (1024 + protocol.DataOverhead); n != 4 {
		t.Fatalf("default write buffer of %d bytes holds %d frames of 1 KiB, want 4", cfg.WriteBuffer, n)
	}
	cfg = Config{WriteBuffer: 100}
	cfg.fill()
	if want := protocol.MaxPayload + protocol.DataOverhead; cfg.WriteBuffer != want {
		t.Fatalf("a write buffer below one frame was raised to %d bytes, want %d", cfg.WriteBuffer, want)
	}
}

func TestWriteBufferPoolDropsForeignBuffers(t *testing.T) {
	w := newWriteBuffers(8<<10, 64<<10)
	w.small.put(&[]byte{}) // not from the pool: dropped
	small := make([]byte, 100)
	w.small.put(&small)
	w.small.put(w.large.get())
	for range 3 {
		b := w.small.get()
		if cap(*b) != 8<<10 {
			t.Fatalf("got a %d-byte buffer from an 8 KiB pool", cap(*b))
		}
		w.small.put(b)
	}
}

// tcpPair returns a connected loopback pair whose first end has a send buffer for about
// sndbuf bytes of data.
func tcpPair(t *testing.T, sndbuf int) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
		}
		other <- c
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	d := <-other
	t.Cleanup(func() { c.Close(); d.Close() })
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sndbuf)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return c, d
}

func TestSessionBuffersGoLargeWithRoomInTheSocket(t *testing.T) {
	w := newWriteBuffers(4864, 64<<10)

	// Room for 1 MiB: large buffers, the same one kept from write to write.
	roomy, _ := tcpPair(t, 1<<20)
	b := sessionBuffers{w: w, conn: roomy}
	first := b.Next(nil)
	if len(first) != 64<<10 || &b.Next(first)[0] != &first[0] {
		t.Fatalf("room for 1 MiB: a %d-byte buffer, or a new one each write", len(first))
	}
	b.Release(first)
	if b.held != nil {
		t.Fatal("the buffer is still held after Release")
	}

	// Room for 16 KiB: a large buffer cut to the room, so the write does not block.
	part, _ := tcpPair(t, 16<<10)
	b = sessionBuffers{w: w, conn: part}
	if got := b.Next(nil); len(got) != 16<<10 || cap(got) != 64<<10 {
		t.Fatalf("room for 16 KiB: %d bytes of a %d-byte buffer, want 16 KiB of a large one", len(got), cap(got))
	}
	b.Release(nil)

	// Room for less than a small buffer: a small one (its write may block).
	tight, _ := tcpPair(t, 4<<10)
	b = sessionBuffers{w: w, conn: tight}
	if got := len(b.Next(nil)); got != 4864 {
		t.Fatalf("room for 4 KiB: a %d-byte buffer, want 4864", got)
	}
	b.Release(nil)

	// No socket to ask: small buffers.
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	b = sessionBuffers{w: w, conn: p1}
	if got := len(b.Next(nil)); got != 4864 {
		t.Fatalf("no socket: a %d-byte buffer, want 4864", got)
	}
	b.Release(nil)

	// Large writes off.
	b = sessionBuffers{w: newWriteBuffers(4864, 1), conn: roomy}
	if got := len(b.Next(nil)); got != 4864 {
		t.Fatalf("large writes off: a %d-byte buffer, want 4864", got)
	}
	b.Release(nil)
}

// The socket is asked for its room once for as many large writes as that room holds: each
// lent large buffer is counted off what it said, and it is asked again only when that is
// used up.
func TestSessionBuffersAskTheSocketOnlyWhenTheRoomIsUsedUp(t *testing.T) {
	w := newWriteBuffers(4864, 64<<10)
	roomy, _ := tcpPair(t, 1<<20)
	b := sessionBuffers{w: w, conn: roomy}
	buf := b.Next(nil)
	room := b.room
	if len(buf) != 64<<10 || room < 64<<10 {
		t.Fatalf("a %d-byte buffer with %d bytes of room left, want 64 KiB and room for more", len(buf), room)
	}
	for range room / (64 << 10) { // nothing is written: the room the socket said is spent
		if buf = b.Next(buf); len(buf) != 64<<10 || b.room != room-64<<10 {
			t.Fatalf("a %d-byte buffer with room %d, want 64 KiB and %d", len(buf), b.room, room-64<<10)
		}
		room = b.room
	}
	// Used up: asked again, the socket (still empty) has room for more.
	if buf = b.Next(buf); len(buf) != 64<<10 || b.room <= room {
		t.Fatalf("room %d after asking again (was %d), a %d-byte buffer", b.room, room, len(buf))
	}
	b.Release(buf)
}
