package link

import (
	"net"
	"testing"
	"time"
)

// echo starts a UDP echo server on loopback.
func echo(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	return pc.LocalAddr().String()
}

func proxy(t *testing.T, up, down LineConfig) (*UDPProxy, *net.UDPConn) {
	t.Helper()
	p, err := NewUDPProxy("127.0.0.1:0", echo(t), up, down, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ra, _ := net.ResolveUDPAddr("udp", p.Addr())
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

func TestUDPProxyAddsTheDelayEachWay(t *testing.T) {
	_, c := proxy(t, LineConfig{Delay: 15 * time.Millisecond}, LineConfig{Delay: 10 * time.Millisecond})
	buf := make([]byte, 64)
	for i := range 5 {
		start := time.Now()
		c.Write([]byte{byte(i)})
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 25*time.Millisecond || rtt > 500*time.Millisecond {
			t.Fatalf("round trip %v through 15ms + 10ms lines", rtt)
		}
	}
}

func TestUDPProxyLosesAboutTheConfiguredShareAndKeepsOrder(t *testing.T) {
	p, c := proxy(t, LineConfig{Loss: 0.1}, LineConfig{})
	// Bursts of 20 datagrams, each burst settled before the next: a tiny datagram costs about
	// 1 KiB of socket buffer, so 2000 in flight would overflow loopback sockets (losses the
	// line never saw) when the race detector slows the echo server.
	const n, burst = 2000, 20
	buf := make([]byte, 64)
	got, last := 0, -1
	deadline := time.Now().Add(30 * time.Second)
	for sent := 0; sent < n; {
		for range burst {
			c.Write([]byte{byte(sent >> 8), byte(sent)})
			sent++
		}
		// Wait until the up line has decided every datagram's fate so far.
		var up Counts
		for {
			up, _ = p.Counts()
			if up.Delivered+up.Dropped == int64(sent) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("up line settled %d+%d of %d datagrams", up.Delivered, up.Dropped, sent)
			}
			time.Sleep(100 * time.Microsecond)
		}
		for int64(got) < up.Delivered {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("echo %d of %d delivered: %v", got+1, up.Delivered, err)
			}
			seq := int(buf[0])<<8 | int(buf[1])
			if k != 2 || seq <= last {
				t.Fatalf("datagram %d after %d: reordered or duplicated", seq, last)
			}
			last = seq
			got++
		}
	}
	up, down := p.Counts()
	if up.Packets != n || down.Dropped != 0 {
		t.Fatalf("up line offered %d (want %d), down dropped %d (want 0)", up.Packets, n, down.Dropped)
	}
	// 10% of 2000: mean 200, sd 13.4; bounds at about 5 sd.
	if lost := n - got; lost < 130 || lost > 270 || int64(lost) != up.Dropped {
		t.Fatalf("%d of %d datagrams lost, line counted %d; want about 200", lost, n, up.Dropped)
	}
}

func TestUDPProxyPacesToItsRate(t *testing.T) {
	// 20 datagrams of 1000 B at 800 kbit/s: 10 ms each, 200 ms in all.
	_, c := proxy(t, LineConfig{Rate: 800_000}, LineConfig{})
	start := time.Now()
	for range 20 {
		c.Write(make([]byte, 1000))
	}
	buf := make([]byte, 2000)
	for i := range 20 {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Fatalf("20 kB through an 800 kbit/s line in %v, want at least 200ms", d)
	}
}
