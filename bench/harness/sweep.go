package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fotagate/fotagate/bench/peers"
	"github.com/fotagate/fotagate/bench/report"
	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/protocol"
)

// The concurrency sweep: for each device count, a fresh gateway child (the real
// gateway/server, peers.NewFleetGateway) and a fleet child that runs every device at once over
// loopback. The fleet takes all devices through three stages and reports after each, and the
// harness samples the gateway's memory at the first two:
//
//	idle: every device connected and silent; the gateway waits for each Hello
//	held: every device past the handshake and its first data frame, then not reading
//	done: every device read to the end, checked the digest, sent its Report, hung up
//
// The devices are protocol.DeviceConns without a flash: a devicelib.Device each would give
// the fleet process a slot per device (10 GiB at 10,000 devices of 1 MiB).

// DefaultSweep is the device counts of a full sweep.
var DefaultSweep = []int{1, 10, 100, 1000, 10000}

// Limits of the sweep.
const (
	sweepTotalBytes = 320 << 20        // image bytes of one step, all devices together, at most
	sweepDialers    = 256              // dials and handshakes in flight at once
	sweepSources    = 16               // loopback source addresses 127.0.0.1..16
	sweepStage      = 10 * time.Minute // one stage of one step, at most
)

// SweepImageSize is the image each device of an n-device step fetches: 1 MiB, smaller at the
// large steps so a step moves at most 320 MiB (the 10,000 step: 32 KiB each) and finishes in
// minutes. Powers of two, at least 4 KiB.
func SweepImageSize(n int) int {
	per := sweepTotalBytes / max(n, 1)
	per = 1 << (bits.Len(uint(per)) - 1)
	return min(max(per, 4<<10), 1<<20)
}

// fleetReport is what the fleet child writes after each stage.
type fleetReport struct {
	Stage   string        `json:"stage"` // idle, held, done
	Elapsed time.Duration `json:"elapsed_ns"`
	Failed  int           `json:"failed"` // devices failed so far, all stages
	Errors  []string      `json:"errors,omitempty"`
	TTFBP50 time.Duration `json:"ttfb_p50_ns,omitempty"`
	TTFBP99 time.Duration `json:"ttfb_p99_ns,omitempty"`
}

// runSweep runs every step of p.Sweep on loopback, one after the other.
func runSweep(ctx context.Context, p Plan) []report.SweepStep {
	var steps []report.SweepStep
	for i, n := range p.Sweep {
		if ctx.Err() != nil {
			break
		}
		size := p.SweepImage
		if size == 0 {
			size = SweepImageSize(n)
		}
		chunk := p.SweepChunk
		if chunk == 0 {
			chunk = devicelib.DefaultMaxPayload
		}
		t0 := time.Now()
		st := sweepStep(ctx, p, n, size, chunk)
		if st.Error != "" {
			fmt.Fprintf(p.Progress, "[sweep %d/%d] %6d devices  FAILED: %s\n", i+1, len(p.Sweep), n, st.Error)
		} else {
			_, heap := st.Held.PerSession(st.Base)
			_, idle := st.Idle.PerSession(st.Base)
			fmt.Fprintf(p.Progress, "[sweep %d/%d] %6d devices x %s  failed %d  %8.1f MB/s  ttfb p50 %.1f p99 %.1f ms  "+
				"heap+stacks/session idle %.0f held %.0f B  (%v)\n",
				i+1, len(p.Sweep), n, sizeName(size), st.Failed, st.Goodput/1e6, st.TTFBP50*1000, st.TTFBP99*1000, idle, heap,
				time.Since(t0).Round(time.Second))
		}
		steps = append(steps, st)
	}
	return steps
}

func sizeName(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// sweepStep runs one step: a gateway child, a fleet child, three stages.
func sweepStep(ctx context.Context, p Plan, n, size, chunk int) (st report.SweepStep) {
	st = report.SweepStep{Devices: n, ImageSize: size, Chunk: chunk}
	gwArgs := []string{"gateway", "--addr", "127.0.0.1:0", "--devices", strconv.Itoa(n),
		"--size", strconv.Itoa(size), "--seed", strconv.FormatUint(p.Seed, 10)}
	if p.ProfileDir != "" {
		gwArgs = append(gwArgs, "--cpuprofile", filepath.Join(p.ProfileDir, fmt.Sprintf("sweep-%d.pprof", n)))
	}
	gw, err := startProc(ctx, exec.Command(p.Exe, gwArgs...), "gateway")
	if err != nil {
		st.Error = err.Error()
		return st
	}
	defer gw.stop()
	if st.Base, err = gw.sample(ctx); err != nil {
		st.Error = err.Error()
		return st
	}
	args := []string{"fleet", "--addr", gw.addr, "--devices", strconv.Itoa(n), "--chunk", strconv.Itoa(chunk),
		"--size", strconv.Itoa(size), "--seed", strconv.FormatUint(p.Seed, 10)}
	if p.sweepKey != 0 {
		args = append(args, "--key", strconv.Itoa(int(p.sweepKey)))
	}
	fl, err := startFleet(exec.Command(p.Exe, args...))
	if err != nil {
		st.Error = err.Error()
		return st
	}
	defer fl.stop()
	var reps [3]fleetReport
	for i, stage := range []string{"idle", "held", "done"} {
		if reps[i], err = fl.next(ctx, stage); err != nil {
			st.Error = err.Error()
			return st
		}
		var mem report.GatewayMemory
		if mem, err = gw.sample(ctx); err != nil {
			st.Error = err.Error()
			return st
		}
		switch stage {
		case "idle":
			st.Idle = mem
		case "held":
			st.Held = mem
		case "done":
			mib := float64(n) * float64(size) / (1 << 20)
			st.CPUmsPerMiB = (mem.CPUSeconds - st.Base.CPUSeconds) * 1000 / mib
		}
		if stage != "done" {
			if err := fl.send("go"); err != nil {
				st.Error = err.Error()
				return st
			}
		}
	}
	done := reps[2]
	st.Failed, st.Errors = done.Failed, done.Errors
	st.ConnectSeconds = (reps[0].Elapsed + reps[1].Elapsed).Seconds()
	st.DataSeconds = done.Elapsed.Seconds()
	if t := st.ConnectSeconds + st.DataSeconds; t > 0 {
		st.Goodput = float64(n-st.Failed) * float64(size) / t
	}
	st.TTFBP50, st.TTFBP99 = done.TTFBP50.Seconds(), done.TTFBP99.Seconds()
	return st
}

// sample asks a gateway child for a memory sample.
func (s *serverProc) sample(ctx context.Context) (report.GatewayMemory, error) {
	if _, err := io.WriteString(s.stdin, "sample\n"); err != nil {
		return report.GatewayMemory{}, fmt.Errorf("gateway: %w", err)
	}
	select {
	case m := <-s.memory:
		return m, nil
	case <-s.exited:
		return report.GatewayMemory{}, fmt.Errorf("gateway exited: %v: %s", s.waitErr, strings.TrimSpace(s.stderr.String()))
	case <-time.After(time.Minute):
		return report.GatewayMemory{}, errors.New("gateway: no memory sample within a minute")
	case <-ctx.Done():
		return report.GatewayMemory{}, ctx.Err()
	}
}

// fleetProc is a running fleet child.
type fleetProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan fleetReport
	exited  chan struct{}
	waitErr error
	stderr  *tailBuffer
}

func startFleet(cmd *exec.Cmd) (*fleetProc, error) {
	f := &fleetProc{cmd: cmd, reports: make(chan fleetReport, 4), exited: make(chan struct{}),
		stderr: &tailBuffer{max: 4096, b: &bytes.Buffer{}}}
	cmd.Env = childEnviron(nil)
	cmd.Stderr = f.stderr
	var err error
	if f.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m childMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Fleet != nil {
				select {
				case f.reports <- *m.Fleet:
				default: // three reports in all; never block the reader
				}
			}
		}
		f.waitErr = cmd.Wait()
		close(f.exited)
	}()
	return f, nil
}

func (f *fleetProc) next(ctx context.Context, stage string) (fleetReport, error) {
	select {
	case r := <-f.reports:
		if r.Stage != stage {
			return r, fmt.Errorf("fleet: stage %q, expected %q", r.Stage, stage)
		}
		return r, nil
	case <-f.exited:
		return fleetReport{}, fmt.Errorf("fleet exited before stage %s: %v: %s", stage, f.waitErr, strings.TrimSpace(f.stderr.String()))
	case <-time.After(sweepStage + time.Minute):
		return fleetReport{}, fmt.Errorf("fleet: no %s report within %v", stage, sweepStage+time.Minute)
	case <-ctx.Done():
		return fleetReport{}, ctx.Err()
	}
}

func (f *fleetProc) send(line string) error {
	_, err := io.WriteString(f.stdin, line+"\n")
	return err
}

// stop closes the fleet's stdin, which ends it, and kills it if it lingers.
func (f *fleetProc) stop() {
	f.stdin.Close()
	select {
	case <-f.exited:
	case <-time.After(30 * time.Second):
		f.cmd.Process.Kill() //nolint:errcheck // it may have just exited
		<-f.exited
	}
}

// raiseFileLimit makes room for n more descriptors than a process starts with. Go raises the
// soft limit to the hard one at start; as root this raises the hard limit too when needed.
func raiseFileLimit(n int) error {
	need := uint64(n) + 256
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	lim.Cur, lim.Max = need, max(lim.Max, need)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("%d devices need RLIMIT_NOFILE %d (ulimit -n %d, or run as root): %w", n, need, need, err)
	}
	return nil
}

// childGateway serves the fleet with the real gateway/server until stdin closes, answering
// each "sample" line with a memory sample.
func childGateway(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	n := fs.Int("devices", 1, "devices provisioned")
	size := fs.Int("size", 1<<20, "image size")
	seed := fs.Uint64("seed", 1, "image seed")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the gateway to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseFileLimit(*n); err != nil {
		return err
	}
	stop, err := cpuProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	srv, err := peers.NewFleetGateway(Image(*size, *seed), *n)
	if err != nil {
		return err
	}
	ln, err := server.ListenConfig().Listen(context.Background(), "tcp", *addr) // as fotagate listens
	if err != nil {
		return err
	}
	go srv.Serve(ln) //nolint:errcheck // ends at Shutdown
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(childMsg{Ready: &ready{Addr: ln.Addr().String()}}); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdin)
	var gcCPU time.Duration // what the samples' forced GCs have taken so far
	for sc.Scan() {
		if sc.Text() == "sample" {
			m := sampleMemory(&gcCPU)
			m.Sessions = srv.Sessions()
			if err := enc.Encode(childMsg{Memory: &m}); err != nil {
				return err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx) //nolint:errcheck // cut sessions are fine at the end of a step
	return nil
}

// processCPU is this process's user + system time.
func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail with these arguments
	return time.Duration(unix.TimevalToNsec(ru.Utime) + unix.TimevalToNsec(ru.Stime))
}

// sampleMemory measures this process after forced GCs, so the heap is what is live: two,
// because sync.Pool keeps what the first one clears in a victim cache until the second; the
// second (FreeOSMemory's) also hands free pages back to the kernel, so resident memory is
// what is in use (as gateway/server's BenchmarkSessionMemory measures it). Its CPU figure
// leaves out what those GCs cost, here and in every earlier sample (gcCPU, which it adds
// this one's to): they are the measurement's, not the gateway's.
func sampleMemory(gcCPU *time.Duration) report.GatewayMemory {
	before := processCPU()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := report.GatewayMemory{Heap: int64(ms.HeapAlloc), Stacks: int64(ms.StackInuse), Goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			m.RSS = pages * int64(os.Getpagesize())
		}
	}
	m.CPUSeconds = (before - *gcCPU).Seconds()
	*gcCPU += processCPU() - before
	return m
}

// fleetDev is one device of the fleet.
type fleetDev struct {
	i      int
	c      net.Conn
	dial   time.Duration
	dc     *protocol.DeviceConn
	ttfb   time.Duration
	h      hash.Hash
	end    uint32 // offset after the last payload
	acked  uint32
	final  bool
	digest [32]byte // the offer's
	err    error
}

// childFleet runs the devices of one sweep step through idle, held and done, writing a
// report after each and waiting for "go" between them; it ends when stdin closes.
func childFleet(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	addr := fs.String("addr", "", "gateway address")
	n := fs.Int("devices", 1, "devices")
	chunk := fs.Int("chunk", devicelib.DefaultMaxPayload, "the devices' max payload")
	size := fs.Int("size", 1<<20, "image size")
	seed := fs.Uint64("seed", 1, "image seed")
	key := fs.Int("key", 0, "tests only: not 0 gives every device a key the gateway does not hold")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := raiseFileLimit(*n); err != nil {
		return err
	}
	want := sha256.Sum256(Image(*size, *seed))
	// An Ack every DefaultAckEvery, rounded up to whole sectors as devicelib.New does.
	ackEvery := uint32((devicelib.DefaultAckEvery + peers.SectorSize - 1) / peers.SectorSize * peers.SectorSize)
	devs := make([]*fleetDev, *n)
	for i := range devs {
		devs[i] = &fleetDev{i: i}
	}
	enc := json.NewEncoder(stdout)
	lines := bufio.NewScanner(stdin)
	waitGo := func() error {
		for lines.Scan() {
			if lines.Text() == "go" {
				return nil
			}
		}
		return errors.New("fleet: stdin closed")
	}
	defer func() {
		for _, d := range devs {
			if d.c != nil {
				d.c.Close()
			}
		}
	}()

	// idle: connect, say nothing.
	t0 := time.Now()
	pool(devs, sweepDialers, func(d *fleetDev) {
		dl := net.Dialer{Timeout: time.Minute, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+d.i%sweepSources))}}
		start := time.Now()
		for attempt := 0; ; attempt++ {
			d.c, d.err = dl.Dial("tcp", *addr)
			// A burst of connects can overflow the listen backlog: retry a refused dial.
			if d.err == nil || attempt == 5 || !errors.Is(d.err, syscall.ECONNREFUSED) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		d.dial = time.Since(start)
	})
	if err := enc.Encode(childMsg{Fleet: fleetStage("idle", time.Since(t0), devs, false)}); err != nil {
		return err
	}
	if err := waitGo(); err != nil {
		return err
	}

	// held: handshake, first data frame, then stop reading.
	t0 = time.Now()
	pool(devs, sweepDialers, func(d *fleetDev) {
		psk := peers.FleetPSK(d.i)
		if *key != 0 {
			psk[0] ^= byte(*key)
		}
		d.c.SetDeadline(time.Now().Add(sweepStage)) //nolint:errcheck // shows as an I/O error
		start := time.Now()
		d.dc, d.err = protocol.NewDeviceConn(d.c, &protocol.DeviceConfig{DeviceID: peers.FleetID(d.i), PSK: psk,
			Class: peers.FleetClass, Running: peers.FleetSeq - 1, MaxPayload: *chunk, BootCounter: 1,
			Rand: rand.NewChaCha8([32]byte{byte(d.i), byte(d.i >> 8), byte(d.i >> 16)})})
		if d.err != nil {
			return
		}
		offer, err := d.dc.Handshake(nil)
		if err == nil && offer.Status != protocol.StatusOffer {
			err = fmt.Errorf("offer status %d, want an image", offer.Status)
		}
		if err != nil {
			d.err = fmt.Errorf("handshake: %w", err)
			return
		}
		d.digest, d.h = offer.Manifest.Digest, sha256.New()
		d.err = d.read()
		d.ttfb = d.dial + time.Since(start)
	})
	if err := enc.Encode(childMsg{Fleet: fleetStage("held", time.Since(t0), devs, false)}); err != nil {
		return err
	}
	if err := waitGo(); err != nil {
		return err
	}

	// done: every device at once reads to the end, checks and reports.
	t0 = time.Now()
	pool(devs, len(devs), func(d *fleetDev) {
		d.c.SetDeadline(time.Now().Add(sweepStage)) //nolint:errcheck // shows as an I/O error
		for !d.final && d.err == nil {
			if d.end/ackEvery > d.acked/ackEvery {
				d.acked = d.end / ackEvery * ackEvery
				if err := d.dc.Ack(d.acked); err != nil {
					d.err = fmt.Errorf("sending Ack %d: %w", d.acked, err)
					return
				}
			}
			d.err = d.read()
		}
		if d.err != nil {
			return
		}
		var got [32]byte
		d.h.Sum(got[:0])
		if got != want || d.digest != want {
			d.err = fmt.Errorf("image digest %x, offer %x, served image %x", got[:8], d.digest[:8], want[:8])
			return
		}
		if err := d.dc.Report(protocol.CodeOK, d.end); err != nil {
			d.err = fmt.Errorf("sending Report: %w", err)
			return
		}
		d.c.Close()
		d.c = nil
	})
	if err := enc.Encode(childMsg{Fleet: fleetStage("done", time.Since(t0), devs, true)}); err != nil {
		return err
	}
	io.Copy(io.Discard, stdin) //nolint:errcheck // the harness closes stdin when it is done with us
	return nil
}

// read takes one data frame into the device's running hash.
func (d *fleetDev) read() error {
	p, off, final, err := d.dc.Next()
	if err != nil {
		return fmt.Errorf("receiving at %d: %w", d.end, err)
	}
	if off != d.end {
		return fmt.Errorf("payload at %d, expected %d", off, d.end)
	}
	d.h.Write(p)
	d.end += uint32(len(p))
	d.final = final
	return nil
}

// pool runs f on every device that has not failed, with at most width at a time.
func pool(devs []*fleetDev, width int, f func(*fleetDev)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(width, len(devs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(devs)); i = next.Add(1) - 1 {
				if d := devs[i]; d.err == nil {
					f(d)
				}
			}
		}()
	}
	wg.Wait()
}

// fleetStage summarises the devices after a stage; the first few distinct errors name why
// devices failed.
func fleetStage(stage string, elapsed time.Duration, devs []*fleetDev, ttfb bool) *fleetReport {
	r := &fleetReport{Stage: stage, Elapsed: elapsed}
	var ts []time.Duration
	seen := map[string]bool{}
	for _, d := range devs {
		if d.err != nil {
			r.Failed++
			msg := d.err.Error()
			if !seen[msg] && len(r.Errors) < 5 {
				seen[msg] = true
				r.Errors = append(r.Errors, fmt.Sprintf("device %d: %s", d.i, msg))
			}
			continue
		}
		ts = append(ts, d.ttfb)
	}
	if ttfb && len(ts) > 0 {
		slices.Sort(ts)
		r.TTFBP50, r.TTFBP99 = percentile(ts, 0.50), percentile(ts, 0.99)
	}
	return r
}

// percentile of sorted ts by the nearest-rank method.
func percentile(ts []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(ts))+0.999999) - 1
	return ts[min(max(i, 0), len(ts)-1)]
}
