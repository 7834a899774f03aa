package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// The devices of the scale tests and benchmarks run in a child process: this test binary,
// started again with fleetEnv set. The parent then holds only the server, so its memory and
// CPU figures are the server's alone, and each side has its own file descriptor limit.

const fleetEnv = "FOTAGATE_SERVER_TEST_FLEET"

func TestMain(m *testing.M) {
	if spec := os.Getenv(fleetEnv); spec != "" {
		os.Exit(runFleet(spec))
	}
	os.Exit(m.Run())
}

// Stages a fleet takes its devices to before it says "ready".
const (
	stageConnect  = "connect"  // connected, nothing sent: the server waits for a Hello
	stageOffer    = "offer"    // Hello sent, Offer read: the server waits for the Accept
	stageStream   = "stream"   // offer taken; each device then reads one frame per ReadEvery
	stageFinal    = "final"    // whole image read and verified, Report held back
	stageDownload = "download" // ready at once; on each "go" every device downloads the image
)

type fleetSpec struct {
	Addr      string
	Devices   int // device i is fleetID(i) with key psk(i)
	Chunk     int // the devices' maximum payload
	Stage     string
	Sources   int           // spread connections over 127.0.0.1..Sources (ports, limiters)
	RcvBuf    int           // SO_RCVBUF of each device socket, 0 for the kernel's default
	ReadEvery time.Duration // stageStream: pause between frames
	AckEvery  int           // stageDownload: Ack each time this many more bytes are durable (0: never)
	Plain     bool          // stageDownload: plain TCP, no protocol: read until the server closes
}

func fleetID(i int) string { return fmt.Sprint("d", i) }

// fleetDevices provisions the devices of a fleet of n.
func fleetDevices(n int) devMap {
	m := make(devMap, n)
	for i := range n {
		m[fleetID(i)] = Device{Class: "esp8266-4m", PSK: psk(i)}
	}
	return m
}

// fleet is the parent's handle on a running child. Lines from the child: "ready",
// "done <bytes>", "fail <reason>".
type fleet struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	exit  chan error
}

func startFleet(tb testing.TB, spec fleetSpec) *fleet {
	tb.Helper()
	js, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fleetEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting the device fleet: %v", err)
	}
	f := &fleet{cmd: cmd, in: in, lines: make(chan string, 4), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
		close(f.lines)
		f.exit <- cmd.Wait()
	}()
	tb.Cleanup(f.stop)
	return f
}

// await returns the fields of the child's next line, failing tb on a failure, an exit or
// silence longer than limit.
func (f *fleet) await(tb testing.TB, limit time.Duration) []string {
	tb.Helper()
	select {
	case l, ok := <-f.lines:
		if !ok {
			tb.Fatal("device fleet exited early")
		}
		if strings.HasPrefix(l, "fail ") {
			tb.Fatalf("device fleet: %s", l[len("fail "):])
		}
		return strings.Fields(l)
	case <-time.After(limit):
		tb.Fatalf("device fleet silent for %v", limit)
	}
	return nil
}

func (f *fleet) send(tb testing.TB, cmd string) {
	tb.Helper()
	if _, err := io.WriteString(f.in, cmd+"\n"); err != nil {
		tb.Fatalf("device fleet: %v", err)
	}
}

// stop closes the child's stdin, which closes every device connection and ends the child.
func (f *fleet) stop() {
	if f.in == nil {
		return
	}
	f.in.Close()
	f.in = nil
	go func() {
		for range f.lines {
		}
	}()
	select {
	case <-f.exit:
	case <-time.After(20 * time.Second):
		f.cmd.Process.Kill()
		<-f.exit
	}
}

// raiseFileLimit makes room for n more descriptors than the ones a process starts with, and
// says plainly when the hard limit is in the way.
func raiseFileLimit(n int) error {
	need := uint64(n + 256)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= need {
		return nil
	}
	lim.Cur = need
	lim.Max = max(lim.Max, need) // raising the hard limit needs CAP_SYS_RESOURCE
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("RLIMIT_NOFILE must be at least %d (ulimit -n %d, or run as root): %w", need, need, err)
	}
	return nil
}

// runFleet is the child's main.
func runFleet(specJSON string) int {
	var spec fleetSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Println("fail spec:", err)
		return 1
	}
	if err := raiseFileLimit(spec.Devices); err != nil {
		fmt.Println("fail", err)
		return 1
	}
	fl := &fleetChild{spec: spec, conns: make([]net.Conn, spec.Devices)}
	if spec.Stage == stageDownload {
		fmt.Println("ready")
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			n, err := fl.downloadAll()
			if err != nil {
				fmt.Println("fail", err)
				return 1
			}
			fmt.Println("done", n)
		}
		return 0
	}
	if err := fl.reach(); err != nil {
		fmt.Println("fail", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // hold every session until the parent closes stdin
	for _, c := range fl.conns {
		if c != nil {
			c.Close()
		}
	}
	return 0
}

type fleetChild struct {
	spec  fleetSpec
	conns []net.Conn
}

func (fl *fleetChild) dial(i int) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if fl.spec.Sources > 1 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%fl.spec.Sources))}
	}
	if n := fl.spec.RcvBuf; n > 0 {
		// Before connect, so the window the device announces is small from the start.
		d.Control = setSockopt(syscall.SO_RCVBUF, n)
	}
	for attempt := 0; ; attempt++ {
		c, err := d.Dial("tcp", fl.spec.Addr)
		// A burst of connects can overflow the listen backlog; a refused dial is retried.
		if err == nil || attempt == 5 || !errors.Is(err, syscall.ECONNREFUSED) {
			return c, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (fl *fleetChild) deviceConfig(i int) *protocol.DeviceConfig {
	return &protocol.DeviceConfig{DeviceID: fleetID(i), PSK: psk(i), Class: "esp8266-4m", Running: 1,
		MaxPayload: fl.spec.Chunk, BootCounter: 1, Rand: rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)})}
}

// reach takes every device to the spec's stage, 64 at a time.
func (fl *fleetChild) reach() error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range min(64, fl.spec.Devices) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < fl.spec.Devices; i = int(next.Add(1)) - 1 {
				if err := fl.reachOne(i); err != nil {
					errs <- fmt.Errorf("device %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (fl *fleetChild) reachOne(i int) error {
	c, err := fl.dial(i)
	if err != nil {
		return err
	}
	fl.conns[i] = c
	if fl.spec.Stage == stageConnect {
		return nil
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if fl.spec.Stage == stageOffer {
		hs, err := protocol.NewDeviceHandshake(fl.deviceConfig(i))
		if err != nil {
			return err
		}
		if _, err := c.Write(hs.Hello()); err != nil {
			return err
		}
		frame, err := protocol.ReadFrame(c, make([]byte, protocol.FrameBufferSize(fl.spec.Chunk)), protocol.MaxOfferBody)
		if err != nil {
			return err
		}
		_, err = hs.ReadOffer(frame)
		return err
	}
	dc, err := protocol.NewDeviceConn(c, fl.deviceConfig(i))
	if err != nil {
		return err
	}
	offer, err := dc.Handshake(nil)
	if err != nil {
		return err
	}
	if offer.Status != protocol.StatusOffer {
		return fmt.Errorf("offer status %d", offer.Status)
	}
	for {
		_, _, final, err := dc.Next()
		if err != nil {
			return err
		}
		if fl.spec.Stage == stageStream {
			go fl.readSlowly(dc)
			return nil
		}
		if final {
			return nil
		}
	}
}

// readSlowly reads one frame per ReadEvery until the Final, then reports; the session's
// connection is closed by the parent's stop.
func (fl *fleetChild) readSlowly(dc *protocol.DeviceConn) {
	for {
		time.Sleep(fl.spec.ReadEvery)
		_, _, final, err := dc.Next()
		if err != nil {
			return
		}
		if final {
			dc.Report(protocol.CodeOK, dc.Session().Manifest().Size)
			return
		}
	}
}

// downloadAll runs every device through a whole download at once and returns the image bytes
// received.
func (fl *fleetChild) downloadAll() (int64, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, fl.spec.Devices)
	for i := range fl.spec.Devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := fl.download(i)
			total.Add(n)
			if err != nil {
				errs <- fmt.Errorf("device %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return total.Load(), <-errs
}

// download is a device's whole session: the tags of every frame are checked (Next opens
// them), the payload itself is dropped.
func (fl *fleetChild) download(i int) (int64, error) {
	c, err := fl.dial(i)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if fl.spec.Plain {
		return fl.downloadPlain(c)
	}
	dc, err := protocol.NewDeviceConn(c, fl.deviceConfig(i))
	if err != nil {
		return 0, err
	}
	offer, err := dc.Handshake(nil)
	if err != nil {
		return 0, err
	}
	if offer.Status != protocol.StatusOffer {
		return 0, fmt.Errorf("offer status %d", offer.Status)
	}
	var n, acked int64
	for {
		p, _, final, err := dc.Next()
		if err != nil {
			return n, err
		}
		n += int64(len(p))
		if final {
			return n, dc.Report(protocol.CodeOK, offer.Manifest.Size)
		}
		// As a device writing 4 KiB flash sectors would: Ack each whole sector.
		if every := int64(fl.spec.AckEvery); every > 0 && n/every*every > acked {
			acked = n / every * every
			if err := dc.Ack(uint32(acked)); err != nil {
				return n, err
			}
		}
	}
}

// downloadPlain is the plain-TCP baseline's device: it reads what the server sends, one
// frame's worth at a time, until the server closes.
func (fl *fleetChild) downloadPlain(c net.Conn) (int64, error) {
	buf := make([]byte, protocol.FrameBufferSize(fl.spec.Chunk))
	var n int64
	for {
		k, err := c.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
