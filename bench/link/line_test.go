package link

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestLineAddsTheDelayToEveryPacket(t *testing.T) {
	l := NewLine(LineConfig{Delay: 25 * time.Millisecond}, 1)
	now := time.Unix(1000, 0)
	for i := range 10 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		due, ok := l.Admit(at, 1500)
		if !ok || due.Sub(at) != 25*time.Millisecond {
			t.Fatalf("packet %d: due %v after it was sent (ok %v), want 25ms", i, due.Sub(at), ok)
		}
	}
}

func TestLineSerializesBackToBackPacketsAtItsRate(t *testing.T) {
	// 1000 bytes at 2 Mbit/s take 4 ms.
	l := NewLine(LineConfig{Delay: 10 * time.Millisecond, Rate: 2_000_000}, 1)
	now := time.Unix(1000, 0)
	var last time.Time
	for i := range 5 {
		due, ok := l.Admit(now, 1000)
		if !ok {
			t.Fatalf("packet %d dropped by a queue with room", i)
		}
		want := now.Add(time.Duration(i+1)*4*time.Millisecond + 10*time.Millisecond)
		if !due.Equal(want) {
			t.Fatalf("packet %d due at +%v, want +%v", i, due.Sub(now), want.Sub(now))
		}
		if due.Before(last) {
			t.Fatal("due times went backwards: the line would reorder")
		}
		last = due
	}
	// An idle line starts afresh: no credit for the time it stood idle.
	later := now.Add(time.Second)
	if due, _ := l.Admit(later, 1000); due.Sub(later) != 14*time.Millisecond {
		t.Fatalf("after idling: due +%v, want +14ms", due.Sub(later))
	}
}

func TestLineDropsTheTailWhenItsQueueIsFull(t *testing.T) {
	l := NewLine(LineConfig{Rate: 8_000, Queue: 3000}, 1) // 1000 B/s: nothing drains meanwhile
	now := time.Unix(1000, 0)
	var kept int
	for range 10 {
		if _, ok := l.Admit(now, 1000); ok {
			kept++
		}
	}
	if kept != 3 {
		t.Fatalf("%d packets of 1000 B kept by a 3000 B queue, want 3", kept)
	}
	if got := l.Stats().QueueFullDropped.Load(); got != 7 {
		t.Fatalf("%d tail drops counted, want 7", got)
	}
}

func TestLineLossRateStaysWithinBounds(t *testing.T) {
	for _, p := range []float64{0, 0.01, 0.1} {
		l := NewLine(LineConfig{Loss: p}, 42)
		const n = 20000
		now := time.Unix(1000, 0)
		for range n {
			l.Admit(now, 100)
		}
		got := float64(l.Stats().Dropped.Load()) / n
		// five standard deviations of a binomial proportion, plus a little
		sd := 5*sqrt(p*(1-p)/n) + 1e-9
		if got < p-sd || got > p+sd {
			t.Errorf("loss %.4f over %d packets, want %.4f ± %.4f", got, n, p, sd)
		}
	}
}

func sqrt(x float64) float64 {
	z := x
	for range 50 {
		if z == 0 {
			return 0
		}
		z -= (z*z - x) / (2 * z)
	}
	return z
}

func TestLinePipeDeliversInOrderAfterTheDelay(t *testing.T) {
	l := NewLine(LineConfig{Delay: 20 * time.Millisecond}, 1)
	in := make(chan []byte, 100)
	type arrival struct {
		seq byte
		at  time.Time
	}
	out := make(chan arrival, 100)
	sent := make([]time.Time, 50)
	go func() {
		for i := range 50 {
			sent[i] = time.Now()
			in <- []byte{byte(i)}
			time.Sleep(200 * time.Microsecond)
		}
		close(in)
	}()
	err := l.Pipe(func(b []byte) (int, error) {
		d, ok := <-in
		if !ok {
			return 0, net.ErrClosed
		}
		return copy(b, d), nil
	}, func(b []byte) error { out <- arrival{b[0], time.Now()}; return nil })
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Pipe ended with %v, want the reader's error", err)
	}
	close(out)
	next := byte(0)
	for a := range out {
		if a.seq != next {
			t.Fatalf("packet %d arrived where %d was due: reordered", a.seq, next)
		}
		if d := a.at.Sub(sent[a.seq]); d < 20*time.Millisecond {
			t.Fatalf("packet %d arrived after %v, before the 20ms delay", a.seq, d)
		}
		next++
	}
	if next != 50 {
		t.Fatalf("%d packets delivered, want 50", next)
	}
}
