//go:build !linux

package server

import (
	"net"
	"syscall"
)

// Elsewhere the server does not look into its sockets: every write uses a small buffer, and
// the device's Acks are read once the Final is out. That costs CPU and delays progress
// events; it changes nothing else.

func setRecvLowat(net.Conn, int) bool { return false }

// ReadNow finds nothing: see socket_linux.go.
func ReadNow(syscall.RawConn, []byte) (int, error) { return 0, nil }

func sendSpace(net.Conn) int { return 0 }
