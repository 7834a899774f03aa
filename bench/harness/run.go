package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
	"github.com/fotagate/fotagate/bench/report"
)

// Plan is what a run measures.
type Plan struct {
	Profiles  []link.Profile
	Peers     []peers.Peer
	Chunks    []int
	ImageSize int
	Seed      uint64
	Reps      int
	// MaxRepTime stops repeating a cell after a transfer that took longer: one 15-minute CoAP
	// transfer says enough.
	MaxRepTime time.Duration
	Timeout    time.Duration // per transfer
	// PrefixBlocks, when positive, stops a stop-and-wait peer's device (peers.StopAndWait)
	// on an emulated link after this many whole blocks, when that is less than the image:
	// one block per round trip makes the rate over the prefix the rate over the image, and a
	// 1 MiB image in 64 B blocks over a 50 ms round trip would take 14 minutes. The cell is
	// marked (report.Cell.Prefix) and its time scaled to the whole image.
	PrefixBlocks int
	// TimeBudget, when positive, gives the cells with the slowest transfers fewer than Reps
	// transfers, one at a time and never below one, until the plan's estimate (Estimate)
	// fits in it. MaxRepTime still applies as the run goes.
	TimeBudget time.Duration
	// Parallel, above 1, runs up to this many emulated profiles side by side after the
	// loopback ones (which always run alone): an emulated link is bound by its rate, round
	// trip and the devices' flash, not by the machine's cores. 0 or 1: one at a time.
	Parallel int
	Link     string    // LinkAuto, LinkNetns or LinkProxy
	Exe      string    // the program to run as children; os.Executable() when empty
	Progress io.Writer // a line per transfer; nil for none
	Command  string    // recorded in the results
	Smoke    bool
	// NoBound skips measuring the physical bound (tests that do not look at it).
	NoBound bool
	// ProfileDir, when set, gets a CPU profile of every server process, named
	// <profile>-<peer>.pprof: for finding where a gateway's CPU per MiB goes.
	ProfileDir string

	// Sweep lists the device counts of the concurrency sweep (none: no sweep); SweepImage,
	// when set, is every step's image size instead of SweepImageSize's.
	Sweep      []int
	SweepImage int
	SweepChunk int // 0 means devicelib.DefaultMaxPayload

	serverSeed uint64 // tests only: serve another image than the devices expect
	sweepKey   byte   // tests only: devices of the sweep use a key the gateway does not hold
}

// DefaultPrefixBlocks is the blocks a stop-and-wait device fetches on an emulated link:
// 256 round trips, 13 s at 50 ms, enough for the rate to settle, and 16 KiB at 64 B chunks
// (whole flash sectors, so the flash timing's per-sector erase is in the rate too).
const DefaultPrefixBlocks = 256

// defaultMaxRepTime is Plan.MaxRepTime's default.
const defaultMaxRepTime = 30 * time.Second

// DefaultChunks are the chunk sizes of a full sweep.
var DefaultChunks = []int{64, 128, 256, 512, 1024, 2048, 4096}

// Run measures every cell of the plan. It returns the results so far with an error only when
// it cannot go on (a link that cannot be built, a cancelled context); a cell that fails records
// its error and the run goes on.
func Run(ctx context.Context, p Plan) (*report.Results, error) {
	if p.Reps < 1 {
		p.Reps = 1
	}
	if p.Timeout == 0 {
		p.Timeout = 30 * time.Minute
	}
	if p.MaxRepTime == 0 {
		p.MaxRepTime = defaultMaxRepTime
	}
	if p.Link == "" {
		p.Link = LinkAuto
	}
	if p.Progress == nil {
		p.Progress = io.Discard
	}
	// Profiles side by side write progress lines at once: one Write per line, one at a time.
	p.Progress = &lockedWriter{w: p.Progress}
	if p.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		p.Exe = exe
	}
	img := Image(p.ImageSize, p.Seed)
	sum := sha256.Sum256(img)
	res := &report.Results{Command: p.Command, Started: time.Now().UTC(), Machine: DescribeMachine(), Smoke: p.Smoke,
		ImageSize: p.ImageSize, ImageSHA256: hex.EncodeToString(sum[:]), Seed: p.Seed, Reps: p.Reps, Chunks: p.Chunks}
	res.Peers = PeerInfos(p.Peers, p.Chunks)
	total := 0
	for _, peer := range p.Peers {
		for _, c := range p.Chunks {
			if peer.Check(c) == nil {
				total += len(p.Profiles)
			}
		}
	}
	est := p.Estimate()
	res.TimeBudget, res.Estimate, res.Reduced = p.TimeBudget, est.Total, est.Reduced
	if p.Parallel > 1 {
		res.Parallel = p.Parallel
	}
	fmt.Fprintf(p.Progress, "estimate: %s\n", est)
	if p.TimeBudget > 0 {
		fmt.Fprintf(p.Progress, "time budget %v: %d slow cell(s) get fewer than %d transfers", p.TimeBudget, est.Reduced, p.Reps)
		if est.Total > p.TimeBudget {
			fmt.Fprintf(p.Progress, "; even one transfer per cell is over the budget")
		}
		fmt.Fprintln(p.Progress)
	}
	r := &runner{Plan: p, total: total, est: est}
	defer func() { res.Finished = time.Now().UTC() }()
	// Loopback profiles are CPU-bound: they run alone, one after the other, in the plan's
	// order. Emulated links are bound by their rate, round trip and the devices' flash, not by
	// the CPU: with Parallel they run side by side afterwards, each with its own link and
	// children. The results keep the plan's order either way.
	out := make([]*report.Profile, len(p.Profiles))
	collect := func() {
		res.Profiles = nil
		for _, pr := range out {
			if pr != nil {
				res.Profiles = append(res.Profiles, *pr)
			}
		}
	}
	var alone, sideBySide []int
	for i, prof := range p.Profiles {
		if prof.Emulated() && p.Parallel > 1 {
			sideBySide = append(sideBySide, i)
		} else {
			alone = append(alone, i)
		}
	}
	for _, i := range alone {
		pr, err := r.profile(ctx, res, i)
		out[i] = pr
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			collect()
			return res, err
		}
	}
	if len(sideBySide) > 0 {
		lanes := make(chan struct{}, p.Parallel)
		errs := make([]error, len(p.Profiles))
		var wg sync.WaitGroup
		for _, i := range sideBySide {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case lanes <- struct{}{}:
				case <-ctx.Done():
					return
				}
				defer func() { <-lanes }()
				out[i], errs[i] = r.profile(ctx, res, i)
			}()
		}
		wg.Wait()
		collect()
		if err := errors.Join(append(errs, ctx.Err())...); err != nil {
			return res, err
		}
	}
	collect()
	if len(p.Sweep) > 0 {
		if res.Bound == nil && !p.Smoke && !p.NoBound {
			b, err := MeasureBound(p.Chunks)
			if err != nil {
				return res, fmt.Errorf("measuring the physical bound: %w", err)
			}
			res.Bound = &b
		}
		res.Sweep = runSweep(ctx, p)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// profile measures every cell of the plan's i-th profile on a link of its own. Only a
// loopback profile touches res (its physical bound), and loopback profiles run alone.
func (r *runner) profile(ctx context.Context, res *report.Results, i int) (*report.Profile, error) {
	p, prof := r.Plan, r.Profiles[i]
	e, err := newEnv(prof, p.Link, p.Seed, i)
	if err != nil {
		return nil, err
	}
	pr := &report.Profile{Name: prof.Name, Description: prof.String(), Emulation: e.describe(), Loss: prof.Loss,
		RTT: prof.RTT.Seconds()}
	fmt.Fprintf(p.Progress, "== %s: %s\n   link: %s\n", prof.Name, prof, pr.Emulation)
	if prof.Flash {
		pr.Flash, pr.Base, pr.FlashSeconds = true, prof.Base(), map[int]float64{}
		for _, c := range p.Chunks {
			pr.FlashSeconds[c] = peers.FlashTime(p.ImageSize, c).Seconds()
		}
	}
	if !prof.Emulated() && !prof.Flash && res.Bound == nil && !p.Smoke && !p.NoBound {
		// The bound belongs to this run's loopback cells: measured here, with nothing else running.
		b, err := MeasureBound(p.Chunks)
		if err != nil {
			e.Close() //nolint:errcheck // the bound's error is the one to report
			return nil, fmt.Errorf("measuring the physical bound: %w", err)
		}
		res.Bound = &b
		fmt.Fprintf(p.Progress, "   bound of one core: seal %.0f MB/s, tcp %.0f MB/s, both %.0f MB/s\n",
			b.SealPerCore/1e6, b.TCPPerCore/1e6, b.Combined()/1e6)
	}
	for _, peer := range p.Peers {
		pr.Cells = append(pr.Cells, r.peer(ctx, e, prof, peer)...)
		if ctx.Err() != nil {
			break
		}
	}
	if err := e.Close(); err != nil {
		return pr, fmt.Errorf("tearing down link %s: %w", prof.Name, err)
	}
	return pr, nil
}

// PeerInfos describes peers for the results: what they do and the device RAM they need at
// each chunk size, which is computed, not measured.
func PeerInfos(ps []peers.Peer, chunks []int) []report.PeerInfo {
	var out []report.PeerInfo
	for _, peer := range ps {
		info := report.PeerInfo{Name: peer.Name(), Network: peer.Network(), About: peer.About()}
		for _, c := range chunks {
			r := peer.DeviceRAM(c)
			info.RAM = append(info.RAM, report.RAM{Chunk: c, Bytes: r.Bytes, How: r.How})
		}
		out = append(out, info)
	}
	return out
}

type runner struct {
	Plan
	done  atomic.Int64 // cells started, over every profile running
	total int
	est   Estimate
}

// peer measures one peer at every chunk size on one profile, with one server process that
// is restarted after a failed transfer.
func (r *runner) peer(ctx context.Context, e env, prof link.Profile, peer peers.Peer) []report.Cell {
	var cells []report.Cell
	var srv *serverProc
	defer func() {
		if srv != nil {
			srv.stop()
		}
	}()
	for _, chunk := range r.Chunks {
		cell := report.Cell{Peer: peer.Name(), Chunk: chunk}
		if err := peer.Check(chunk); err != nil {
			cell.NA = strings.TrimPrefix(err.Error(), peers.ErrChunkUnsupported.Error()+": ")
			cells = append(cells, cell)
			continue
		}
		done := r.done.Add(1)
		plan := r.est.cell(r.Plan, prof, peer, chunk)
		cell.Prefix = plan.budget
		for rep := 0; rep < plan.reps && ctx.Err() == nil; rep++ {
			if srv == nil {
				var err error
				seed := r.Seed
				if r.serverSeed != 0 {
					seed = r.serverSeed
				}
				var extra []string
				if r.ProfileDir != "" {
					extra = []string{"--cpuprofile", filepath.Join(r.ProfileDir, prof.Name+"-"+peer.Name()+".pprof")}
				}
				if srv, err = startServer(ctx, e, r.Exe, peer, r.ImageSize, seed, extra...); err != nil {
					cell.Error = err.Error()
					break
				}
				// A fresh process pays for lazy initialisation and heap growth once: not in a sample.
				// The warm-up device runs beside the server, off the emulated link, so it is quick.
				if _, err := r.transfer(ctx, e, prof, srv, peer, r.warmChunk(peer), 0, true); err != nil {
					cell.Error = "warm-up: " + err.Error()
					srv.stop()
					srv = nil
					break
				}
			}
			s, err := r.transfer(ctx, e, prof, srv, peer, chunk, plan.budget, false)
			if err != nil {
				cell.Error = err.Error()
				fmt.Fprintf(r.Progress, "[%3d/%d] %-16s %-9s %5d B  rep %d/%d  FAILED: %v\n", done, r.total, prof.Name, peer.Name(), chunk, rep+1, plan.reps, err)
				srv.stop()
				srv = nil
				break
			}
			cell.Samples = append(cell.Samples, s)
			took, prefix := s.Seconds, ""
			if s.Delivered > 0 {
				took, prefix = s.MeasuredSeconds, fmt.Sprintf("  (first %d KiB, %.1f s; scaled)", s.Delivered>>10, s.MeasuredSeconds)
			}
			fmt.Fprintf(r.Progress, "[%3d/%d] %-16s %-9s %5d B  rep %d/%d  %8.3f s %9.1f KB/s  wire x%.3f  cpu %7.2f ms/MiB%s\n",
				done, r.total, prof.Name, peer.Name(), chunk, rep+1, plan.reps, s.Seconds, s.Goodput/1000, s.WireRatio, s.CPUmsPerMiB, prefix)
			if time.Duration(took*float64(time.Second)) > r.MaxRepTime {
				break
			}
		}
		if ctx.Err() != nil && cell.Error == "" && len(cell.Samples) < plan.reps {
			cell.Error = "interrupted"
		}
		cells = append(cells, cell)
	}
	return cells
}

// warmChunk is the largest chunk of the plan the peer takes: the quickest warm-up.
func (r *runner) warmChunk(peer peers.Peer) int {
	best := 0
	for _, c := range r.Chunks {
		if peer.Check(c) == nil && c > best {
			best = c
		}
	}
	return best
}

// transfer runs one device against the server and combines what both sides measured. A
// warm-up device runs where the server runs, off the emulated link.
func (r *runner) transfer(ctx context.Context, e env, prof link.Profile, srv *serverProc, peer peers.Peer, chunk, budget int, warm bool) (report.Sample, error) {
	addr := srv.addr
	if !warm {
		routed, closer, err := e.route(peer.Network(), srv.addr)
		if err != nil {
			return report.Sample{}, err
		}
		defer closer.Close()
		addr = routed
	}
	up0, down0, hasIP := e.counts()
	hasIP = hasIP && !warm
	args := []string{"fetch", "--peer", peer.Name(), "--addr", addr, "--info", srv.info, "--chunk", strconv.Itoa(chunk),
		"--size", strconv.Itoa(r.ImageSize), "--seed", strconv.FormatUint(r.Seed, 10), "--timeout", r.Timeout.String()}
	if prof.Flash && !warm {
		args = append(args, "--flash")
	}
	if budget > 0 {
		args = append(args, "--budget", strconv.Itoa(budget))
	}
	cmd := e.command(warm, r.Exe, args)
	cmd.Env = childEnviron(peer.ClientEnv())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &tailBuffer{max: 4096, b: &stderr}
	runErr := runCmd(ctx, cmd, r.Timeout+30*time.Second)
	var msg childMsg
	if err := json.Unmarshal(stdout.Bytes(), &msg); err != nil || msg.Fetch == nil {
		return report.Sample{}, fmt.Errorf("device: %v: %s", errors.Join(runErr, errNoLine), strings.TrimSpace(stderr.String()))
	}
	if msg.Fetch.Err != "" {
		return report.Sample{}, fmt.Errorf("device: %s", msg.Fetch.Err)
	}
	if runErr != nil {
		return report.Sample{}, fmt.Errorf("device: %w: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	sess, err := srv.next(ctx, 90*time.Second)
	if err != nil {
		return report.Sample{}, err
	}
	if !sess.Marked {
		return report.Sample{}, errors.New("server: the peer never marked where the image data began")
	}
	f := msg.Fetch
	if f.Stopped != (budget > 0) {
		return report.Sample{}, fmt.Errorf("device: stopped %v after %d bytes with a budget of %d", f.Stopped, f.Bytes, budget)
	}
	s := report.Sample{
		Seconds: f.Elapsed.Seconds(), FirstByte: f.FirstByte.Seconds(), Goodput: float64(r.ImageSize) / f.Elapsed.Seconds(),
		BytesIn: sess.BytesIn, BytesOut: sess.BytesOut,
		WireRatio:   float64(sess.BytesIn+sess.BytesOut) / float64(r.ImageSize),
		DownRatio:   float64(sess.BytesOut) / float64(r.ImageSize),
		HandshakeIn: sess.HandshakeIn, HandshakeOut: sess.HandshakeOut, RoundTrips: sess.HandshakeTurns,
		Writes: sess.Writes, MaxWrite: sess.MaxWrite,
		CPUSeconds: (sess.CPUUser + sess.CPUSys).Seconds(), ServerRSS: sess.MaxRSS,
	}
	// per is the image bytes the CPU and IP figures are per: the whole image, or the prefix.
	per := float64(r.ImageSize)
	if f.Stopped {
		per = float64(f.Bytes)
		scalePrefix(&s, f, sess, chunk, r.ImageSize)
	}
	if peer.Network() == "tcp" {
		s.RoundTrips++ // the TCP handshake, which the server's reads and writes do not show
	}
	s.CPUmsPerMiB = s.CPUSeconds * 1000 / (per / (1 << 20))
	if hasIP {
		time.Sleep(prof.RTT + 10*time.Millisecond) // let the last FIN and ACK cross
		up1, down1, _ := e.counts()
		up, down := up1.Sub(up0), down1.Sub(down0)
		s.IP = &report.IPCounts{UpPackets: up.Packets, UpBytes: up.Bytes, DownPackets: down.Packets, DownBytes: down.Bytes,
			Dropped: up.Dropped + down.Dropped, Ratio: float64(up.Bytes+down.Bytes) / per}
	}
	return s, nil
}

// scalePrefix turns a transfer that stopped after a prefix of the image into figures for the
// whole image. The device holds f.Bytes; everything up to the first block (the handshake and
// that block's round trip, the handshake bytes) happens once per image, and each further
// block costs what the prefix's blocks cost on average: one block per round trip. So time,
// wire and downlink are the handshake's plus the rest scaled by the bytes still to come;
// goodput is the image over that time. CPU and IP bytes cannot be split at the first byte:
// the caller divides them by the bytes delivered, the handshake's share included (a little
// high: a handshake is 3 round trips of a prefix's hundreds).
func scalePrefix(s *report.Sample, f *fetchResult, sess peers.Session, chunk, image int) {
	delivered := float64(f.Bytes)
	s.Delivered, s.MeasuredSeconds = int64(f.Bytes), f.Elapsed.Seconds()
	first := min(float64(chunk), delivered)
	rest := float64(image) - first
	if more := delivered - first; more > 0 {
		s.Seconds = f.FirstByte.Seconds() + (f.Elapsed-f.FirstByte).Seconds()*rest/more
	} else {
		s.Seconds = f.Elapsed.Seconds() * float64(image) / delivered
	}
	s.Goodput = float64(image) / s.Seconds
	// Bytes after the handshake carried the prefix: scaled to the whole image.
	hs := float64(sess.HandshakeIn + sess.HandshakeOut)
	data := float64(sess.BytesIn+sess.BytesOut) - hs
	s.WireRatio = (hs + data*float64(image)/delivered) / float64(image)
	down := float64(sess.BytesOut - sess.HandshakeOut)
	s.DownRatio = (float64(sess.HandshakeOut) + down*float64(image)/delivered) / float64(image)
}

var errNoLine = errors.New("child wrote no result")

// serverProc is a running server child.
type serverProc struct {
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	addr, info string
	sessions   chan peers.Session
	memory     chan report.GatewayMemory
	exited     chan struct{}
	waitErr    error
	stderr     *tailBuffer
}

func startServer(ctx context.Context, e env, exe string, peer peers.Peer, size int, seed uint64, extra ...string) (*serverProc, error) {
	args := append([]string{"serve", "--peer", peer.Name(), "--addr", e.serverHost() + ":0",
		"--size", strconv.Itoa(size), "--seed", strconv.FormatUint(seed, 10)}, extra...)
	return startProc(ctx, e.command(true, exe, args), "server "+peer.Name())
}

// startProc starts a server-like child and waits for its ready line.
func startProc(ctx context.Context, cmd *exec.Cmd, name string) (*serverProc, error) {
	s := &serverProc{cmd: cmd, sessions: make(chan peers.Session, 64), memory: make(chan report.GatewayMemory, 4),
		exited: make(chan struct{}), stderr: &tailBuffer{max: 4096, b: &bytes.Buffer{}}}
	s.cmd.Env = childEnviron(nil)
	s.cmd.Stderr = s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	readyc := make(chan ready, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m childMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch {
			case m.Ready != nil:
				readyc <- *m.Ready
			case m.Session != nil:
				select {
				case s.sessions <- *m.Session:
				default: // one transfer at a time never gets here; never block the reader
				}
			case m.Memory != nil:
				select {
				case s.memory <- *m.Memory:
				default: // one sample asked for at a time never gets here
				}
			}
		}
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case rd := <-readyc:
		s.addr, s.info = rd.Addr, rd.Info
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("%s exited: %v: %s", name, s.waitErr, strings.TrimSpace(s.stderr.String()))
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	s.stop()
	return nil, fmt.Errorf("%s: not ready", name)
}

// next waits for the server to report the session that just ended.
func (s *serverProc) next(ctx context.Context, timeout time.Duration) (peers.Session, error) {
	select {
	case sess := <-s.sessions:
		return sess, nil
	case <-s.exited:
		return peers.Session{}, fmt.Errorf("server exited: %v: %s", s.waitErr, strings.TrimSpace(s.stderr.String()))
	case <-time.After(timeout):
		return peers.Session{}, fmt.Errorf("server: no session record within %v", timeout)
	case <-ctx.Done():
		return peers.Session{}, ctx.Err()
	}
}

// stop closes the server's stdin, which asks it to shut down, and kills it if it lingers.
func (s *serverProc) stop() {
	s.stdin.Close()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill() //nolint:errcheck // it may have just exited
		<-s.exited
	}
}

// runCmd runs cmd, killing it when ctx ends or after timeout.
func runCmd(ctx context.Context, cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	case <-ctx.Done():
	}
	cmd.Process.Kill() //nolint:errcheck // it may have just exited
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("killed after %v", timeout)
}

// childEnviron is this process's environment with the child marker and extra variables; a
// GODEBUG in extra is appended to any GODEBUG already set.
func childEnviron(extra []string) []string {
	env := append(os.Environ(), childEnv+"=1")
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		if k == "GODEBUG" {
			if old := os.Getenv("GODEBUG"); old != "" {
				v = old + "," + v
			}
		}
		env = append(env, k+"="+v)
	}
	return env
}

// lockedWriter serialises writes, so lines from profiles running side by side never mix.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   *bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
