package peers

import (
	"io"
	"net"
	"testing"
	"time"
)

// pipeListener hands out the server end of one net.Pipe.
type pipeListener struct{ c chan net.Conn }

func (l pipeListener) Accept() (net.Conn, error) { return <-l.c, nil }
func (pipeListener) Close() error                { return nil }
func (pipeListener) Addr() net.Addr              { return &net.TCPAddr{} }

func meteredPipe(t *testing.T) (server, device net.Conn, sessions chan Session, m *Meter) {
	t.Helper()
	sessions = make(chan Session, 1)
	m = NewMeter(func(s Session) { sessions <- s })
	a, b := net.Pipe()
	l := pipeListener{make(chan net.Conn, 1)}
	l.c <- a
	server, err := m.Listener(l).Accept()
	if err != nil {
		t.Fatal(err)
	}
	return server, b, sessions, m
}

func TestMeterSplitsTheHandshakeFromTheDataAtTheMark(t *testing.T) {
	srv, dev, sessions, m := meteredPipe(t)
	go func() {
		dev.Write(make([]byte, 10)) // hello
		io.ReadFull(dev, make([]byte, 20))
		dev.Write(make([]byte, 5)) // accept
		io.Copy(io.Discard, dev)
	}()
	buf := make([]byte, 64)
	io.ReadFull(srv, buf[:10])
	srv.Write(buf[:20]) // turn 1
	io.ReadFull(srv, buf[:5])
	m.Mark(srv.RemoteAddr().String())
	srv.Write(buf[:64]) // turn 2: the first data
	srv.Write(buf[:64])
	srv.Close()
	select {
	case s := <-sessions:
		if !s.Marked || s.HandshakeIn != 15 || s.HandshakeOut != 20 || s.HandshakeTurns != 2 {
			t.Errorf("handshake %d in / %d out, %d turns, marked %v; want 15 / 20, 2 turns", s.HandshakeIn, s.HandshakeOut, s.HandshakeTurns, s.Marked)
		}
		if s.BytesIn != 15 || s.BytesOut != 148 || s.Writes != 3 || s.MaxWrite != 64 {
			t.Errorf("counted %d in, %d out in %d writes (largest %d); want 15, 148, 3, 64", s.BytesIn, s.BytesOut, s.Writes, s.MaxWrite)
		}
		if s.Wall <= 0 || s.MaxRSS <= 0 {
			t.Errorf("no wall time (%v) or RSS (%d)", s.Wall, s.MaxRSS)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the connection reported no session")
	}
}

func TestMeterLeavesAnUnmarkedSessionUnmarked(t *testing.T) {
	srv, dev, sessions, _ := meteredPipe(t)
	go io.Copy(io.Discard, dev)
	srv.Write([]byte("data"))
	srv.Close()
	srv.Close() // a second Close reports nothing more
	if s := <-sessions; s.Marked || s.HandshakeOut != 0 {
		t.Fatalf("unmarked session reported as marked: %+v", s)
	}
	select {
	case s := <-sessions:
		t.Fatalf("second session from a double Close: %+v", s)
	case <-time.After(100 * time.Millisecond):
	}
}
