//go:build linux

package caddytest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tries is how often Start lets caddy lose its port before it gives up.
const tries = 3

// Start runs the command that command builds for a free port and a fresh directory (caddy's
// HOME and XDG directories are set there; the command's own Env entries are added to them),
// until ready(port, dir) returns nil, and returns that port and directory. It fails the test
// when caddy is not installed, exits three times, or does not answer within wait.
func Start(t testing.TB, wait time.Duration, command func(port int, dir string) *exec.Cmd, ready func(port int, dir string) error) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("caddy"); err != nil {
		t.Fatalf("caddy is not installed (%v): run `make deps`, which installs Debian's caddy package, then rerun the tests", err)
	}
	for try := 1; try <= tries; try++ {
		if port, dir, ok := run(t, try, wait, command, ready); ok {
			return port, dir
		}
	}
	t.Fatalf("caddy exited %d times; see its logs above", tries)
	return 0, ""
}

// run starts caddy once; false means it exited before it answered.
func run(t testing.TB, try int, wait time.Duration, command func(int, string) *exec.Cmd, ready func(int, string) error) (int, string, bool) {
	t.Helper()
	dir := t.TempDir()
	port := freeLoopbackPort(t)
	logs := &syncBuffer{}
	cmd := command(port, dir)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
	}, cmd.Env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit is the signal
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited
		<-exited
		if t.Failed() {
			t.Logf("caddy log (try %d):\n%s", try, logs.String())
		}
	})
	deadline := time.Now().Add(wait)
	for {
		err := ready(port, dir)
		if err == nil {
			return port, dir, true
		}
		select {
		case <-exited:
			t.Logf("caddy exited on port %d: %v\n%s", port, cmd.ProcessState, logs.String())
			return 0, "", false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not answer on port %d within %v: %v\n%s", port, wait, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeLoopbackPort finds a port free on 127.0.0.1 for both TCP (h1, h2) and UDP (h3).
// Another process may still take it before caddy binds it; Start then tries again.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		_ = l.Close()
		if err == nil {
			_ = pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}

// syncBuffer collects caddy's log, written from its two pipes at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
