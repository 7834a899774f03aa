package server

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/unix"

	"github.com/fotagate/fotagate/protocol"
)

// Benchmarks of the whole server over loopback, devices in a child process (fleet_test.go) so
// the CPU and memory measured are the server's. Read them against the bare AEAD in the same
// run: BenchmarkAggregateThroughput reports its goodput per server core as a fraction of what
// one core seals with nothing around it ("goodput/seal-core"); BenchmarkBareSeal1KiB is that
// baseline on its own.
//
//	go test -run '^$' -bench . -benchmem -benchtime 3x ./gateway/server

// benchServer starts a server for the benchmarks: generous limits, one cached image, and a
// production logger (JSON, info) writing to nowhere, so what logging costs is counted.
func benchServer(tb testing.TB, devices devMap, img *Image, cfg Config) (*Server, string) {
	tb.Helper()
	return benchServerSndBuf(tb, devices, img, cfg, 0)
}

// benchServerSndBuf is benchServer with SO_SNDBUF set on the listener, which accepted sockets
// inherit (0: the kernel's autotuning). On loopback the kernel sizes a send buffer from the
// 64 KiB segment size, about 1.3 MB to start with, which swallows a whole 1 MiB image at once;
// over a real link with a device's small window it stays tens of KiB, and the session's write
// blocks for most of the transfer. The memory benchmarks set a small one to see the latter.
func benchServerSndBuf(tb testing.TB, devices devMap, img *Image, cfg Config, sndbuf int) (*Server, string) {
	tb.Helper()
	cfg.GatewayID = "gw-bench"
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = len(devices) + 16
	}
	cfg.FailBurst, cfg.FailRate = 1<<20, 1<<20
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder // as fotagate's json logs (gateway/cmd/fotagate/logging.go)
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(io.Discard), zap.InfoLevel))
	s, err := New(cfg, devices, oneImage{img}, nil, log)
	if err != nil {
		tb.Fatal(err)
	}
	lc := ListenConfig()
	if sndbuf > 0 {
		lc.Control = setSockopt(syscall.SO_SNDBUF, sndbuf)
	}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, ln.Addr().String()
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// bareSealRate is what one core seals per second of its CPU time, 1 KiB at a time into a
// reused buffer: the best of three fixed runs of 16 MiB, timed by the thread's own CPU clock
// (CLOCK_THREAD_CPUTIME_ID, the goroutine locked to its thread), as the server's figure is
// its CPU time: other load on the machine, which takes turns on the cores, then slows
// neither. (getrusage's thread figure lags by up to a scheduler tick, 10 ms here: a run of
// 16 MiB read anywhere from 1.2 to 2.2 GB/s by it.)
func bareSealRate(tb testing.TB) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	p := randomBytes(1024, 1)
	dst := make([]byte, 0, len(p)+chacha20poly1305.Overhead)
	threadCPU := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			tb.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	best := time.Duration(1 << 62)
	const n = 16 << 10
	for range 3 {
		t0 := threadCPU()
		for range n {
			dst = aead.Seal(dst[:0], nonce, p, nil)
		}
		best = min(best, threadCPU()-t0)
	}
	return n * 1024 / best.Seconds()
}

// BenchmarkBareSeal1KiB is the baseline: the AEAD alone sealing 1 KiB at a time into a
// reused buffer. An op is 1 MiB of such seals, so MB/s stays meaningful under -benchtime 3x,
// which the session benchmarks want.
func BenchmarkBareSeal1KiB(b *testing.B) {
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	p := randomBytes(1024, 1)
	dst := make([]byte, 0, len(p)+chacha20poly1305.Overhead)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		for range 1024 {
			dst = aead.Seal(dst[:0], nonce, p, nil)
		}
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAggregateThroughput: N devices download a cached image at once, 1 KiB chunks. An
// op is one round of all N; MB/s is the aggregate goodput (image bytes the devices opened).
// The image is 1 MiB (64 KiB at 1,000 devices), held in memory as the gateway's cache holds
// it (MemoryImage). Each session also costs about 190 us of server CPU whatever its size
// (accept, handshake, close: measured with 4 KiB images), so a smaller image measures that
// more than the stream: at 256 KiB it was a fifth of the CPU.
//
// The smallwrites case is the same 100 devices with the large writes off (Config.MaxWrite):
// every write from a 4,864-byte buffer, 4 frames, as when every socket is full (pools.go).
func BenchmarkAggregateThroughput(b *testing.B) {
	type run struct {
		n     int
		small bool
	}
	for _, r := range []run{{1, false}, {10, false}, {100, false}, {100, true}, {1000, false}} {
		name := fmt.Sprintf("devices=%d", r.n)
		cfg := Config{}
		if r.small {
			name += "/smallwrites"
			cfg.MaxWrite = 1
		}
		n := r.n
		b.Run(name, func(b *testing.B) {
			size := 1 << 20 // an ESP8266 image, as in bench/
			if n >= 1000 {
				size = 64 << 10 // a round stays near 64 MiB
			}
			seal := bareSealRate(b)
			_, addr := benchServer(b, fleetDevices(n), newImage(randomBytes(size, 2), 5), cfg)
			f := startFleet(b, fleetSpec{Addr: addr, Devices: n, Chunk: 1024, Stage: stageDownload, Sources: 8})
			f.await(b, 10*time.Second)
			b.SetBytes(int64(n * size))
			b.ResetTimer()
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			cpu0, t0 := cpuTime(b), time.Now()
			for range b.N {
				f.send(b, "go")
				got := f.await(b, 2*time.Minute)
				if len(got) != 2 || got[1] != strconv.Itoa(n*size) {
					b.Fatalf("round: %q, want %d bytes", got, n*size)
				}
			}
			cpu, wall := cpuTime(b)-cpu0, time.Since(t0)
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			bytes := float64(b.N) * float64(n*size)
			b.ReportMetric(cpu.Seconds()*1e3/(bytes/(1<<20)), "server-cpu-ms/MiB")
			b.ReportMetric(float64(ru1.Stime.Nano()-ru0.Stime.Nano())/1e6/(bytes/(1<<20)), "server-sys-ms/MiB")
			b.ReportMetric(cpu.Seconds()/wall.Seconds(), "server-cores")
			b.ReportMetric(seal/1e6, "bare-seal-MB/s")
			// Goodput per server core over one core's bare Seal: 1 would mean the server costs
			// no more than sealing; the rest is syscalls, the handshake and the runtime.
			b.ReportMetric(bytes/cpu.Seconds()/seal, "goodput/seal-core")
		})
	}
}

// memSample is the server process's memory after collections: the first lets the runtime
// shrink parked goroutine stacks, the second (FreeOSMemory's) frees what that released and
// returns free pages to the kernel, so resident memory follows what is in use.
type memSample struct {
	heap, stack, rss uint64
	goroutines       int
}

func sampleMemory(tb testing.TB) memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(statm))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, rss: pages * uint64(os.Getpagesize()),
		goroutines: runtime.NumGoroutine()}
}

// perSession is the growth from before to after, per session, in bytes.
func perSession(before, after memSample, n int) (heapStack, rss float64) {
	d := func(a, b uint64) float64 { return float64(int64(a) - int64(b)) }
	return (d(after.heap, before.heap) + d(after.stack, before.stack)) / float64(n), d(after.rss, before.rss) / float64(n)
}

// waitSessions waits until the server holds n sessions.
func waitSessions(tb testing.TB, s *Server, n int, limit time.Duration) {
	tb.Helper()
	for deadline := time.Now().Add(limit); s.Sessions() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("server holds %d sessions, want %d", s.Sessions(), n)
		}
	}
}

// BenchmarkSessionMemory holds 1,000 sessions in one state and reports what each costs the
// server: Go heap and stacks in use ("B/session", after collection; "stack-B/session" the
// stacks alone) and resident memory ("rss-B/session"). Idle sessions wait in the handshake;
// active ones stream to devices that read one frame every 100 ms through a 4 KiB receive
// buffer, as a device flashing slowly would, from a server whose send buffers are 32 KiB (as
// over a real link, see benchServerSndBuf), so each session's write is blocked, holding its
// buffer, as it would be for most of a real transfer. Kernel socket buffers are not counted:
// they are not the process's.
func BenchmarkSessionMemory(b *testing.B) {
	const k = 1000
	for _, c := range []struct {
		name  string
		stage string
		chunk int
	}{
		{"idle=connected", stageConnect, 1024},
		{"idle=offered", stageOffer, 1024},
		{"active=chunk256", stageStream, 256},
		{"active=chunk1024", stageStream, 1024},
		{"active=chunk4096", stageStream, 4096},
		{"active=awaiting-report", stageFinal, 1024},
	} {
		b.Run(c.name, func(b *testing.B) {
			size := 1 << 20
			if c.stage == stageFinal {
				size = 4 << 10
			}
			s, addr := benchServerSndBuf(b, fleetDevices(k), newImage(randomBytes(size, 3), 5), Config{}, 16<<10)
			var heapStack, rss, goroutines, stack float64
			for range b.N {
				before := sampleMemory(b)
				f := startFleet(b, fleetSpec{Addr: addr, Devices: k, Chunk: c.chunk, Stage: c.stage,
					Sources: 8, RcvBuf: 4 << 10, ReadEvery: 100 * time.Millisecond})
				f.await(b, time.Minute)
				waitSessions(b, s, k, 10*time.Second)
				after := sampleMemory(b)
				hs, r := perSession(before, after, k)
				heapStack, rss = heapStack+hs, rss+r
				goroutines += float64(after.goroutines-before.goroutines) / k
				stack += (float64(after.stack) - float64(before.stack)) / k
				f.stop()
				waitSessions(b, s, 0, 20*time.Second)
			}
			b.ReportMetric(heapStack/float64(b.N), "B/session")
			b.ReportMetric(rss/float64(b.N), "rss-B/session")
			b.ReportMetric(goroutines/float64(b.N), "goroutines/session")
			b.ReportMetric(stack/float64(b.N), "stack-B/session")
		})
	}
}

// BenchmarkTimeToFirstByte times, one session after another, from dialling the server to the
// first payload byte opened, the image already cached; an op is 2,000 sessions. Each session
// then finishes normally, off the clock.
func BenchmarkTimeToFirstByte(b *testing.B) {
	const sessions = 2000
	data := randomBytes(4<<10, 4)
	devs := devMap{"ttfb": {Class: "esp8266-4m", PSK: psk(1)}}
	_, addr := benchServer(b, devs, newImage(data, 5), Config{})
	cfg := &protocol.DeviceConfig{DeviceID: "ttfb", PSK: psk(1), Class: "esp8266-4m", Running: 1,
		MaxPayload: 1024, BootCounter: 1, Rand: rand.NewChaCha8([32]byte{9})}
	var lat []time.Duration
	session := func(i int) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%8))}}
		t0 := time.Now()
		c, err := d.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		dc, err := protocol.NewDeviceConn(c, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dc.Handshake(nil); err != nil {
			b.Fatal(err)
		}
		p, _, final, err := dc.Next()
		if err != nil || len(p) == 0 {
			b.Fatalf("first frame: %d bytes, %v", len(p), err)
		}
		lat = append(lat, time.Since(t0))
		for !final {
			if _, _, final, err = dc.Next(); err != nil {
				b.Fatal(err)
			}
		}
		if err := dc.Report(protocol.CodeOK, uint32(len(data))); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 50 { // warm the pools, the limiter map and the connection paths
		session(i)
	}
	lat = lat[:0]
	b.ResetTimer()
	for range b.N {
		for i := range sessions {
			session(i)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-us")
	b.ReportMetric(q(0.99), "p99-us")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-us")
}

// BenchmarkOneDevice is bench/'s fotagate peer (bench/peers/fotagate.go) in this package: one
// device at a time downloads a 1 MiB image over loopback, the server otherwise idle, so what
// each wake-up and write costs is not hidden behind other sessions. An op is one whole
// session, handshake included; server-cpu-ms/MiB is the server process's user+system time per
// MiB of image. The device Acks every 32 KiB (devicelib's default, which bench/'s device uses)
// or, in the ack=4KiB cases, every 4 KiB flash sector. plain-tcp is the floor in the same run:
// a bare TCP sender writing the same bytes, in writes of the largest size the server makes
// for that chunk (writeSize of Config.MaxWrite: on loopback its socket has room for most of
// them), to a device reading one frame's worth at a time.
func BenchmarkOneDevice(b *testing.B) {
	const size = 1 << 20
	for _, chunk := range []int{64, 1024, 4096} {
		for _, ack := range []int{32 << 10, 4 << 10} {
			b.Run(fmt.Sprintf("chunk=%d/fotagate/ack=%dKiB", chunk, ack>>10), func(b *testing.B) {
				_, addr := benchServer(b, fleetDevices(1), newImage(randomBytes(size, 7), 5), Config{})
				f := startFleet(b, fleetSpec{Addr: addr, Devices: 1, Chunk: chunk, Stage: stageDownload, AckEvery: ack})
				f.await(b, 10*time.Second)
				oneDeviceRounds(b, f, size, size)
			})
		}
		b.Run(fmt.Sprintf("chunk=%d/plain-tcp", chunk), func(b *testing.B) {
			frames := (size + chunk - 1) / chunk
			wire := size + frames*protocol.DataOverhead
			addr := plainSender(b, wire, writeSize(DefaultConfig().MaxWrite, chunk))
			f := startFleet(b, fleetSpec{Addr: addr, Devices: 1, Chunk: chunk, Stage: stageDownload, Plain: true})
			f.await(b, 10*time.Second)
			oneDeviceRounds(b, f, size, wire)
		})
	}
}

// oneDeviceRounds runs b.N downloads (after one unmeasured one, as bench/ does) and reports the
// server's CPU per MiB of image.
func oneDeviceRounds(b *testing.B, f *fleet, size, want int) {
	round := func() {
		f.send(b, "go")
		if got := f.await(b, time.Minute); len(got) != 2 || got[1] != strconv.Itoa(want) {
			b.Fatalf("round: %q, want %d bytes", got, want)
		}
	}
	round()
	b.SetBytes(int64(size))
	b.ResetTimer()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	cpu0 := cpuTime(b)
	for range b.N {
		round()
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	mib := float64(b.N) * float64(size) / (1 << 20)
	b.ReportMetric(float64(ru1.Stime.Nano()-ru0.Stime.Nano())/1e6/mib, "sys-ms/MiB")
	b.ReportMetric(float64(ru1.Nvcsw-ru0.Nvcsw)/mib, "vcsw/MiB")
	b.ReportMetric(cpu.Seconds()*1e3/(float64(b.N)*float64(size)/(1<<20)), "server-cpu-ms/MiB")
}

// plainSender serves each connection wire bytes in writes of size bytes, then closes it.
func plainSender(tb testing.TB, wire, size int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	buf := randomBytes(size, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				for left := wire; left > 0; left -= size {
					if _, err := c.Write(buf[:min(size, left)]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
