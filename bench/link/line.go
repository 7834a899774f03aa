package link

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// LineConfig is one direction of a link.
type LineConfig struct {
	Delay time.Duration // one-way propagation delay
	Rate  int64         // bits per second; 0 = no serialization delay (something else shapes)
	Loss  float64       // probability that a packet is dropped
	Queue int           // bytes waiting to be serialized before the tail is dropped; 0 = 64 KiB
}

const defaultQueue = 64 << 10

// Line decides, packet by packet, what one direction of a link does: a packet is lost with
// probability Loss, waits behind the packets already queued (drop-tail past Queue bytes), takes
// size*8/Rate to serialize and arrives Delay later. Due times never decrease, so a Line
// delivers in order. Admit is for one goroutine; Pipe runs one.
type Line struct {
	cfg  LineConfig
	rng  *rand.Rand
	busy time.Time // when everything admitted so far has been serialized
	st   Stats
}

// Stats counts what a Line was offered and what it did with it. IP-level bytes when the Line
// carries IP packets (Netns), datagram payloads when it carries UDP (UDPProxy).
type Stats struct {
	Packets, Bytes   atomic.Int64 // offered to the line
	Dropped          atomic.Int64 // lost at random or at the queue tail
	Delivered        atomic.Int64 // packets written out
	DeliveredBytes   atomic.Int64
	WriteErrs        atomic.Int64
	QueueFullDropped atomic.Int64
}

// Counts is a snapshot of Stats.
type Counts struct {
	Packets, Bytes, Dropped, Delivered, DeliveredBytes int64
}

// Snapshot reads the counters.
func (s *Stats) Snapshot() Counts {
	return Counts{s.Packets.Load(), s.Bytes.Load(), s.Dropped.Load(), s.Delivered.Load(), s.DeliveredBytes.Load()}
}

// Sub returns c - o.
func (c Counts) Sub(o Counts) Counts {
	return Counts{c.Packets - o.Packets, c.Bytes - o.Bytes, c.Dropped - o.Dropped, c.Delivered - o.Delivered, c.DeliveredBytes - o.DeliveredBytes}
}

// NewLine returns a line; seed makes its losses reproducible.
func NewLine(cfg LineConfig, seed uint64) *Line {
	if cfg.Queue == 0 {
		cfg.Queue = defaultQueue
	}
	return &Line{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x66627e6c696e65))}
}

// Stats returns the line's counters.
func (l *Line) Stats() *Stats { return &l.st }

// Admit decides the fate of a packet of size bytes offered at now: ok is false when it is
// dropped, else it is due at the far end at due.
func (l *Line) Admit(now time.Time, size int) (due time.Time, ok bool) {
	l.st.Packets.Add(1)
	l.st.Bytes.Add(int64(size))
	if l.cfg.Loss > 0 && l.rng.Float64() < l.cfg.Loss {
		l.st.Dropped.Add(1)
		return time.Time{}, false
	}
	if l.cfg.Rate <= 0 {
		return now.Add(l.cfg.Delay), true
	}
	start := l.busy
	if start.Before(now) {
		start = now
	}
	queued := int64(start.Sub(now)) * l.cfg.Rate / 8 / int64(time.Second)
	if queued+int64(size) > int64(l.cfg.Queue) {
		l.st.Dropped.Add(1)
		l.st.QueueFullDropped.Add(1)
		return time.Time{}, false
	}
	l.busy = start.Add(time.Duration(int64(size) * 8 * int64(time.Second) / l.cfg.Rate))
	return l.busy.Add(l.cfg.Delay), true
}

type packet struct {
	due  time.Time
	data []byte
}

// Pipe carries packets from read to write through the line until read fails, then returns
// that error once the packets in flight are written or dropped. read must return one whole
// packet per call into the buffer it is given.
func (l *Line) Pipe(read func([]byte) (int, error), write func([]byte) error) error {
	q := make(chan packet, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for p := range q {
			if d := time.Until(p.due); d > 0 {
				t.Reset(d)
				<-t.C
			}
			if err := write(p.data); err != nil {
				l.st.WriteErrs.Add(1)
				continue
			}
			l.st.Delivered.Add(1)
			l.st.DeliveredBytes.Add(int64(len(p.data)))
		}
	}()
	buf := make([]byte, 65536)
	var err error
	for {
		var n int
		n, err = read(buf)
		if err != nil {
			break
		}
		due, ok := l.Admit(time.Now(), n)
		if !ok {
			continue
		}
		select {
		case q <- packet{due, append([]byte(nil), buf[:n]...)}:
		default: // the writer is hopelessly behind: drop as a full interface queue would
			l.st.Dropped.Add(1)
			l.st.QueueFullDropped.Add(1)
		}
	}
	close(q)
	<-done
	return err
}
