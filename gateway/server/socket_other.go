//go:build !linux

package server

import "net"

// Elsewhere the server does not tune its sockets: each of the device's frames then wakes the
// session's reader, and every write uses a small buffer. That costs CPU and changes nothing
// else.

func setRecvLowat(net.Conn, int) bool { return false }

func sendSpace(net.Conn) int { return 0 }
