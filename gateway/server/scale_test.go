package server

import (
	"errors"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// TestTenThousandSessionsHeld holds 10,000 device sessions on one server at once: each device
// completes the handshake, takes the offered image, reads it to the Final and then holds back
// its Report, so every session waits in the server with its keys and both goroutines (its
// write buffer went back to the pool with the Final). The devices run in a child process
// (fleet_test.go), 16 loopback source addresses wide so ephemeral ports and per-source limits
// are no concern.
func TestTenThousandSessionsHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections: skipped under -short")
	}
	if raceEnabled {
		t.Skip("10,000 sessions need 20,000 goroutines; the race detector allows 8,128")
	}
	const n = 10000
	if err := raiseFileLimit(n); err != nil {
		t.Fatalf("holding %d sessions: %v", n, err)
	}
	t0 := time.Now()
	s, addr := benchServer(t, fleetDevices(n), newImage(randomBytes(4<<10, 6), 5),
		Config{MaxSessions: n, HandshakeTimeout: time.Minute, IdleTimeout: time.Minute})
	before := sampleMemory(t)
	f := startFleet(t, fleetSpec{Addr: addr, Devices: n, Chunk: 1024, Stage: stageFinal, Sources: 16})
	f.await(t, time.Minute)
	waitSessions(t, s, n, 10*time.Second)
	held := time.Since(t0)
	after := sampleMemory(t)
	heapStack, rss := perSession(before, after, n)
	t.Logf("%d sessions held after %v: %.0f B/session heap+stacks, %.0f B/session resident, %d goroutines",
		n, held.Round(time.Millisecond), heapStack, rss, after.goroutines)
	// The cap is full: one more device is told the gateway is busy.
	if _, err := fetch(addr, fleetID(0), psk(0), 1024, 1); !errors.Is(err, protocol.ErrBusy) {
		t.Errorf("device beyond %d sessions: %v, want busy", n, err)
	}
	f.stop()
	waitSessions(t, s, 0, 20*time.Second)
	t.Logf("all closed after %v", time.Since(t0).Round(time.Millisecond))
}
