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
	Link       string        // LinkAuto, LinkNetns or LinkProxy
	Exe        string        // the program to run as children; os.Executable() when empty
	Progress   io.Writer     // a line per transfer; nil for none
	Command    string        // recorded in the results
	Smoke      bool
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
		p.MaxRepTime = 30 * time.Second
	}
	if p.Link == "" {
		p.Link = LinkAuto
	}
	if p.Progress == nil {
		p.Progress = io.Discard
	}
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
	r := &runner{Plan: p, total: total}
	defer func() { res.Finished = time.Now().UTC() }()
	for _, prof := range p.Profiles {
		e, err := newEnv(prof, p.Link, p.Seed)
		if err != nil {
			return res, err
		}
		pr := report.Profile{Name: prof.Name, Description: prof.String(), Emulation: e.describe(), Loss: prof.Loss}
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
				return res, fmt.Errorf("measuring the physical bound: %w", err)
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
		res.Profiles = append(res.Profiles, pr)
		if err := e.Close(); err != nil {
			return res, fmt.Errorf("tearing down link %s: %w", prof.Name, err)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
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
	done, total int
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
		r.done++
		for rep := 0; rep < r.Reps && ctx.Err() == nil; rep++ {
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
				if _, err := r.transfer(ctx, e, prof, srv, peer, r.warmChunk(peer), true); err != nil {
					cell.Error = "warm-up: " + err.Error()
					srv.stop()
					srv = nil
					break
				}
			}
			s, err := r.transfer(ctx, e, prof, srv, peer, chunk, false)
			if err != nil {
				cell.Error = err.Error()
				fmt.Fprintf(r.Progress, "[%3d/%d] %-16s %-9s %5d B  rep %d/%d  FAILED: %v\n", r.done, r.total, prof.Name, peer.Name(), chunk, rep+1, r.Reps, err)
				srv.stop()
				srv = nil
				break
			}
			cell.Samples = append(cell.Samples, s)
			fmt.Fprintf(r.Progress, "[%3d/%d] %-16s %-9s %5d B  rep %d/%d  %8.3f s %9.1f KB/s  wire x%.3f  cpu %7.2f ms/MiB\n",
				r.done, r.total, prof.Name, peer.Name(), chunk, rep+1, r.Reps, s.Seconds, s.Goodput/1000, s.WireRatio, s.CPUmsPerMiB)
			if time.Duration(s.Seconds*float64(time.Second)) > r.MaxRepTime {
				break
			}
		}
		if ctx.Err() != nil && cell.Error == "" && len(cell.Samples) < r.Reps {
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
func (r *runner) transfer(ctx context.Context, e env, prof link.Profile, srv *serverProc, peer peers.Peer, chunk int, warm bool) (report.Sample, error) {
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
	size := float64(r.ImageSize)
	f := msg.Fetch
	s := report.Sample{
		Seconds: f.Elapsed.Seconds(), FirstByte: f.FirstByte.Seconds(), Goodput: size / f.Elapsed.Seconds(),
		BytesIn: sess.BytesIn, BytesOut: sess.BytesOut, WireRatio: float64(sess.BytesIn+sess.BytesOut) / size,
		DownRatio:   float64(sess.BytesOut) / size,
		HandshakeIn: sess.HandshakeIn, HandshakeOut: sess.HandshakeOut, RoundTrips: sess.HandshakeTurns,
		Writes: sess.Writes, MaxWrite: sess.MaxWrite,
		CPUSeconds: (sess.CPUUser + sess.CPUSys).Seconds(), ServerRSS: sess.MaxRSS,
	}
	if peer.Network() == "tcp" {
		s.RoundTrips++ // the TCP handshake, which the server's reads and writes do not show
	}
	s.CPUmsPerMiB = s.CPUSeconds * 1000 / (size / (1 << 20))
	if hasIP {
		time.Sleep(prof.RTT + 10*time.Millisecond) // let the last FIN and ACK cross
		up1, down1, _ := e.counts()
		up, down := up1.Sub(up0), down1.Sub(down0)
		s.IP = &report.IPCounts{UpPackets: up.Packets, UpBytes: up.Bytes, DownPackets: down.Packets, DownBytes: down.Bytes,
			Dropped: up.Dropped + down.Dropped, Ratio: float64(up.Bytes+down.Bytes) / size}
	}
	return s, nil
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
