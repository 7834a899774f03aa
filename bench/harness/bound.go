package harness

import (
	"errors"
	"io"
	"net"
	"runtime"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/unix"

	"github.com/fotagate/fotagate/bench/report"
)

// The bound's parameters: large messages and large writes, so each figure is the best its
// job can do on this machine.
const (
	boundSealMessage = 16 << 10
	boundWriteSize   = 256 << 10
	boundCPU         = 150 * time.Millisecond // CPU time each figure is measured over
	boundRuns        = 3                      // the best of these
)

// MeasureBound measures the loopback physical bound of one core (report.Bound): ChaCha20-
// Poly1305 Seal, bare TCP over loopback, and Seal at each chunk size. Each figure is bytes per
// second of its own thread's CPU (its CPU clock, with the goroutine locked to its thread), so
// other load on the machine slows it less than it would a wall-clock figure; the best of
// boundRuns runs is kept.
func MeasureBound(chunks []int) (report.Bound, error) {
	b := report.Bound{SealMessage: boundSealMessage, WriteSize: boundWriteSize, SealAtChunk: map[int]float64{}}
	for range boundRuns {
		b.SealPerCore = max(b.SealPerCore, sealRate(boundSealMessage))
		tcp, share, err := tcpRate(boundWriteSize)
		if err != nil {
			return b, err
		}
		if tcp > b.TCPPerCore {
			b.TCPPerCore, b.ReaderCPUShare = tcp, share
		}
		for _, c := range chunks {
			b.SealAtChunk[c] = max(b.SealAtChunk[c], sealRate(c))
		}
	}
	return b, nil
}

// threadCPU is the calling thread's user + system time, from its CPU clock: getrusage's
// thread figure lags by up to a scheduler tick (10 ms on these machines), a few percent of a
// figure measured over boundCPU, and the best of boundRuns would keep the one it overstated.
func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) //nolint:errcheck // cannot fail for the calling thread
	return time.Duration(ts.Nano())
}

// sealRate seals msg-byte messages for about boundCPU of thread CPU and returns bytes per
// CPU-second.
func sealRate(msg int) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		panic(err) // a 32-byte key cannot be refused
	}
	plain := make([]byte, msg)
	out := make([]byte, 0, msg+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	t0 := threadCPU()
	var n, cpu int64
	for i := 1; i <= 1<<24; i++ { // bounded; the CPU check ends it long before
		nonce[0] = byte(i)
		aead.Seal(out, nonce, plain, nil)
		n += int64(msg)
		if i%256 == 0 {
			if cpu = int64(threadCPU() - t0); time.Duration(cpu) >= boundCPU {
				break
			}
		}
	}
	cpu = int64(threadCPU() - t0)
	if cpu <= 0 {
		return 0
	}
	return float64(n) / time.Duration(cpu).Seconds()
}

// tcpRate writes size-byte writes over a loopback TCP connection for about boundCPU of the
// writing thread's CPU and returns bytes per second of that CPU, and the reading thread's
// CPU as a share of the writer's.
func tcpRate(size int) (rate, readerShare float64, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	type result struct {
		cpu time.Duration
		err error
	}
	readerDone := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c, err := ln.Accept()
		if err != nil {
			readerDone <- result{err: err}
			return
		}
		defer c.Close()
		t0 := threadCPU()
		buf := make([]byte, size)
		for {
			if _, err := c.Read(buf); err != nil {
				if !errors.Is(err, io.EOF) {
					readerDone <- result{err: err}
					return
				}
				break
			}
		}
		readerDone <- result{cpu: threadCPU() - t0}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, 0, err
	}
	c.SetDeadline(time.Now().Add(time.Minute)) //nolint:errcheck // a stuck reader shows as a write error
	buf := make([]byte, size)
	t0 := threadCPU()
	var n int64
	var cpu time.Duration
	for i := 1; i <= 1<<16; i++ { // bounded; the CPU check ends it long before
		w, err := c.Write(buf)
		n += int64(w)
		if err != nil {
			c.Close()
			return 0, 0, err
		}
		if i%16 == 0 {
			if cpu = threadCPU() - t0; cpu >= boundCPU {
				break
			}
		}
	}
	cpu = threadCPU() - t0
	c.Close()
	r := <-readerDone
	if r.err != nil {
		return 0, 0, r.err
	}
	if cpu <= 0 {
		return 0, 0, nil
	}
	return float64(n) / cpu.Seconds(), float64(r.cpu) / float64(cpu), nil
}
