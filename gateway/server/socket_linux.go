//go:build linux

package server

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendSpace is about how many more bytes c's socket takes before a write blocks: half its send
// buffer (SO_SNDBUF, which the kernel sizes at twice the data it holds, for its bookkeeping)
// less the bytes queued and not yet acknowledged (SIOCOUTQ). It is 0 when c has no socket or
// the kernel does not say.
func sendSpace(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	space := 0
	if err := rc.Control(func(fd uintptr) {
		buf, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		if err != nil {
			return
		}
		queued, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if err != nil {
			return
		}
		space = max(0, buf/2-queued)
	}); err != nil {
		return 0
	}
	return space
}

// setRecvLowat sets SO_RCVLOWAT on c's socket, when c has one (a *net.TCPConn, or a wrapper
// with a SyscallConn method), and reports whether it could. The kernel then wakes a poller
// (and so the runtime's network poller and the goroutine reading) only once at least n bytes
// are queued, or the peer closes; a read still returns whatever is queued.
func setRecvLowat(c net.Conn, n int) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); err != nil {
		return false
	}
	return serr == nil
}

// ReadNow reads what rc's socket holds, up to len(p) bytes, with one read that does not
// wait (the runtime keeps sockets non-blocking): 0 and nil when nothing has arrived (or no
// socket, rc nil), io.EOF once the peer has closed. It is how the server reads what a device
// has sent between its writes (protocol.PendingReader); a wrapper of the device listener's
// connections that implements PendingReader itself (bench/peers' meter) reads with it too.
func ReadNow(rc syscall.RawConn, p []byte) (int, error) {
	if rc == nil {
		return 0, nil
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), p)
		return true // never wait
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, nil
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
