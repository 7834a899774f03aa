package peers

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain reruns the tests with GODEBUG=cpu.aes=off when it is not set: the HTTPS peers need
// it in the device's process (see HTTPS), and here device and server share one.
func TestMain(m *testing.M) {
	if !strings.Contains(os.Getenv("GODEBUG"), "cpu.aes=off") {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "GODEBUG="+strings.TrimPrefix(os.Getenv("GODEBUG")+",cpu.aes=off", ","))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.ExitCode())
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type sessions struct {
	mu sync.Mutex
	s  []Session
	ch chan struct{}
}

func (s *sessions) add(x Session) {
	s.mu.Lock()
	s.s = append(s.s, x)
	s.mu.Unlock()
	s.ch <- struct{}{}
}

func TestEveryPeerDeliversTheExactImageAndIsMetered(t *testing.T) {
	img := make([]byte, 200<<10+123) // not a multiple of any chunk
	rand.NewChaCha8([32]byte{3}).Read(img)
	// Server read->write turns before the first data byte (the TCP connect is not seen).
	// Device flights the server answers before its first image write (the TCP connect is
	// added by the harness): fotagate's image follows the Offer, the answer to the Hello.
	turns := map[string]int{"fotagate": 1, "fotagate-c": 1, "tcp": 1, "https": 2, "https-rec": 2, "coap-dtls": 4}
	for _, p := range All() {
		for _, chunk := range []int{64, 512, 1024} {
			t.Run(p.Name()+"/"+itoa(chunk), func(t *testing.T) {
				ss := &sessions{ch: make(chan struct{}, 4)}
				srv, err := p.Serve("127.0.0.1:0", img, NewMeter(ss.add))
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				got, err := p.Fetch(ctx, FetchConfig{Addr: srv.Addr(), Info: srv.Info(), Chunk: chunk})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Image, img) {
					t.Fatalf("delivered %d bytes that differ from the %d-byte image", len(got.Image), len(img))
				}
				if got.Elapsed <= 0 {
					t.Fatal("no elapsed time")
				}
				select {
				case <-ss.ch:
				case <-time.After(10 * time.Second):
					t.Fatal("the server never ended the session")
				}
				s := ss.s[0]
				t.Logf("%+v", s)
				if !s.Marked || s.HandshakeTurns != turns[p.Name()] {
					t.Errorf("handshake marked %v after %d turns, want %d", s.Marked, s.HandshakeTurns, turns[p.Name()])
				}
				if s.BytesOut < int64(len(img)) || s.BytesIn == 0 || s.HandshakeOut >= s.BytesOut {
					t.Errorf("counted %d out / %d in (handshake %d out): the image alone is %d", s.BytesOut, s.BytesIn, s.HandshakeOut, len(img))
				}
				if s.CPUUser+s.CPUSys <= 0 || s.MaxRSS <= 0 {
					t.Errorf("no CPU (%v) or RSS (%d) measured", s.CPUUser+s.CPUSys, s.MaxRSS)
				}
			})
		}
	}
}

func itoa(n int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+n/1000%10)) + string(rune('0'+n/100%10)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10)))
}

func TestPeersRefuseChunkSizesTheirProtocolCannotCarry(t *testing.T) {
	for _, c := range []struct {
		peer  Peer
		chunk int
	}{
		{CoAP{}, 2048}, {CoAP{}, 4096}, {CoAP{}, 8}, {CoAP{}, 500},
		{Fotagate{}, 32}, {Fotagate{}, 8192},
		{HTTPS{}, 32768}, {TCP{}, 0},
	} {
		if err := c.peer.Check(c.chunk); !errors.Is(err, ErrChunkUnsupported) {
			t.Errorf("%s with %d-byte chunks: %v, want ErrChunkUnsupported", c.peer.Name(), c.chunk, err)
		}
	}
	for _, p := range All() {
		for _, chunk := range []int{64, 128, 256, 512, 1024} {
			if err := p.Check(chunk); err != nil {
				t.Errorf("%s refuses %d-byte chunks: %v", p.Name(), chunk, err)
			}
		}
	}
}
