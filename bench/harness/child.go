package harness

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/fotagate/fotagate/bench/peers"
	"github.com/fotagate/fotagate/bench/report"
)

// childEnv, set to 1, makes the program a child of the harness; the remaining arguments say
// which ("serve" or "fetch") and how.
const childEnv = "FOTABENCH_CHILD"

// IsChild reports whether this process was started by the harness as a child. A program that
// runs Run must call ChildMain first thing when it is: cmd/fotabench does, and so does the
// TestMain of any test that runs the harness.
func IsChild() bool { return os.Getenv(childEnv) == "1" }

// Image is the bench image: size bytes from a ChaCha8 stream keyed by seed. Both children
// derive it, so it never crosses a pipe.
func Image(size int, seed uint64) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	img := make([]byte, size)
	rand.NewChaCha8(key).Read(img)
	return img
}

// childMsg is one JSON line a child writes on its stdout.
type childMsg struct {
	Ready   *ready         `json:"ready,omitempty"`
	Session *peers.Session `json:"session,omitempty"`
	Fetch   *fetchResult   `json:"fetch,omitempty"`
	// The concurrency sweep's children (sweep.go).
	Memory *report.GatewayMemory `json:"memory,omitempty"`
	Fleet  *fleetReport          `json:"fleet,omitempty"`
}

type ready struct {
	Addr string `json:"addr"`
	Info string `json:"info"`
}

type fetchResult struct {
	Elapsed   time.Duration `json:"elapsed_ns"`
	FirstByte time.Duration `json:"first_byte_ns"`
	Bytes     int           `json:"bytes"`
	// Stopped: the device stopped after its budget; Bytes is the prefix it holds.
	Stopped bool   `json:"stopped,omitempty"`
	Err     string `json:"error,omitempty"`
}

// ChildMain runs a child and returns its exit code.
func ChildMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "fotabench child: want serve or fetch")
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = childServe(args[1:], os.Stdin, os.Stdout)
	case "fetch":
		err = childFetch(args[1:], os.Stdout)
	case "gateway":
		err = childGateway(args[1:], os.Stdin, os.Stdout)
	case "fleet":
		err = childFleet(args[1:], os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown child mode %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fotabench child:", err)
		return 1
	}
	return 0
}

type childFlags struct {
	fs               *flag.FlagSet
	peer, addr, info *string
	size, chunk      *int
	seed             *uint64
	timeout          *time.Duration
	cpuprofile       *string
	flash            *bool
	budget           *int
}

func parseChild(name string, args []string) (*childFlags, peers.Peer, error) {
	f := &childFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.peer = f.fs.String("peer", "", "peer name")
	f.addr = f.fs.String("addr", "", "listen (serve) or dial (fetch) address")
	f.info = f.fs.String("info", "", "what the server told the harness for its clients")
	f.size = f.fs.Int("size", 1<<20, "image size")
	f.chunk = f.fs.Int("chunk", 512, "chunk size")
	f.seed = f.fs.Uint64("seed", 1, "image seed")
	f.timeout = f.fs.Duration("timeout", time.Hour, "transfer time limit")
	f.cpuprofile = f.fs.String("cpuprofile", "", "write a CPU profile of this process to the file")
	f.flash = f.fs.Bool("flash", false, "fetch: write into a flash with the ESP8266's timing")
	f.budget = f.fs.Int("budget", 0, "fetch: stop after this many image bytes (stop-and-wait peers only; 0: the whole image)")
	if err := f.fs.Parse(args); err != nil {
		return nil, nil, err
	}
	p, err := peers.Lookup(*f.peer)
	return f, p, err
}

// childServe serves one peer until stdin closes, writing a ready line and then one line per
// finished session.
func childServe(args []string, stdin io.Reader, stdout io.Writer) error {
	f, p, err := parseChild("serve", args)
	if err != nil {
		return err
	}
	stop, err := cpuProfile(*f.cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	emit := func(m childMsg) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(m) //nolint:errcheck // the harness sees a missing line
	}
	srv, err := p.Serve(*f.addr, Image(*f.size, *f.seed), peers.NewMeter(func(s peers.Session) { emit(childMsg{Session: &s}) }))
	if err != nil {
		return err
	}
	emit(childMsg{Ready: &ready{Addr: srv.Addr(), Info: srv.Info()}})
	io.Copy(io.Discard, stdin) //nolint:errcheck // any end of stdin means stop
	return srv.Close()
}

// childFetch runs one transfer and writes one line; it fails unless the image arrived intact.
func childFetch(args []string, stdout io.Writer) error {
	f, p, err := parseChild("fetch", args)
	if err != nil {
		return err
	}
	if *f.budget > 0 && !peers.IsStopAndWait(p) {
		return fmt.Errorf("%s: %w", p.Name(), peers.ErrBudgetUnsupported)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	got, err := p.Fetch(ctx, peers.FetchConfig{Addr: *f.addr, Info: *f.info, Chunk: *f.chunk,
		FlashTiming: *f.flash, ImageSize: *f.size, Budget: *f.budget})
	res := fetchResult{Elapsed: got.Elapsed, FirstByte: got.FirstByte, Bytes: len(got.Image), Stopped: got.Stopped}
	want := Image(*f.size, *f.seed)
	if got.Stopped {
		// A prefix is checked against the same prefix of the image: as strict as the whole.
		if len(got.Image) < *f.budget || len(got.Image) >= *f.size {
			err = fmt.Errorf("stopped with %d bytes, want at least the budget of %d and less than the image's %d", len(got.Image), *f.budget, *f.size)
		} else {
			want = want[:len(got.Image)]
		}
	}
	if err == nil && sha256.Sum256(got.Image) != sha256.Sum256(want) {
		err = fmt.Errorf("delivered image (%d bytes) differs from the served one (%d bytes)", len(got.Image), len(want))
	}
	if err != nil {
		res.Err = err.Error()
	}
	w := bufio.NewWriter(stdout)
	json.NewEncoder(w).Encode(childMsg{Fetch: &res}) //nolint:errcheck // the harness sees a missing line
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// cpuProfile starts a CPU profile of this process into path (none when path is empty) and
// returns what stops it and closes the file.
func cpuProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}, nil
}
