package link

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Addresses inside the namespaces Netns creates. Link-local (RFC 3927) and assigned only there,
// so nothing is ever routed beyond the two namespaces.
const (
	ServerIP = "169.254.77.2"
	ClientIP = "169.254.77.1"
)

// Netns is an emulated link between two network namespaces it creates, fb-srv-<pid>-<id> and
// fb-cli-<pid>-<id>. Each holds one TUN device; the kernel's tbf shapes each device's egress to the
// profile's rate, and this process reads every IP packet from one TUN and writes it to the
// other through a Line that adds half the round trip and the loss. TCP and UDP therefore see
// the link end to end: real round trips for their windows and handshakes, real drops to
// recover from.
type Netns struct {
	srvNS, cliNS   string
	srvTun, cliTun *os.File
	up, down       *Line // up: client to server
	wg             sync.WaitGroup
	closeOnce      sync.Once
}

// NetnsAvailable says why Netns cannot be used here, or nil.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s (iproute2) not found: %w", tool, err)
		}
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("TUN devices unavailable: %w", err)
	}
	return f.Close()
}

// NewNetns builds the namespaces and devices for profile p and starts carrying packets. The
// caller must Close it, which removes everything it made, also after a failed start.
// id tells apart the links one process has at the same time (a bench running profiles side
// by side): the names are fb-srv-<pid>-<id> and fb-cli-<pid>-<id>.
func NewNetns(p Profile, seed uint64, id int) (n *Netns, err error) {
	pid := os.Getpid()
	n = &Netns{srvNS: fmt.Sprintf("fb-srv-%d-%d", pid, id), cliNS: fmt.Sprintf("fb-cli-%d-%d", pid, id)}
	defer func() {
		if err != nil {
			n.Close() //nolint:errcheck // the first error is the one to report
			n = nil
		}
	}()
	// At most IFNAMSIZ-1 = 15 bytes: "fbs", 7 digits of pid, "-", the id.
	srvDev, cliDev := fmt.Sprintf("fbs%d-%d", pid, id), fmt.Sprintf("fbc%d-%d", pid, id)
	for _, ns := range []string{n.srvNS, n.cliNS} {
		if err := run("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
	}
	if n.srvTun, err = openTun(srvDev); err != nil {
		return nil, err
	}
	if n.cliTun, err = openTun(cliDev); err != nil {
		return nil, err
	}
	for _, side := range []struct{ ns, dev, local, peer string }{
		{n.srvNS, srvDev, ServerIP, ClientIP},
		{n.cliNS, cliDev, ClientIP, ServerIP},
	} {
		cmds := [][]string{
			{"ip", "link", "set", "dev", side.dev, "netns", side.ns},
			{"ip", "-n", side.ns, "link", "set", "dev", "lo", "up"},
			// No IPv6 link-local address: no neighbour discovery chatter in the counts.
			{"ip", "-n", side.ns, "link", "set", "dev", side.dev, "addrgenmode", "none"},
			{"ip", "-n", side.ns, "addr", "add", side.local, "peer", side.peer, "dev", side.dev},
			{"ip", "-n", side.ns, "link", "set", "dev", side.dev, "up"},
		}
		if p.Rate > 0 {
			// burst: two full-size packets; latency bounds the queue (bufferbloat) at 100 ms.
			cmds = append(cmds, []string{"tc", "-n", side.ns, "qdisc", "replace", "dev", side.dev, "root", "tbf",
				"rate", strconv.FormatInt(p.Rate, 10) + "bit", "burst", "3028", "latency", "100ms"})
		}
		for _, c := range cmds {
			if err := run(c...); err != nil {
				return nil, err
			}
		}
	}
	line := LineConfig{Delay: p.RTT / 2, Loss: p.Loss}
	n.up, n.down = NewLine(line, seed), NewLine(line, seed+1)
	n.wg.Add(2)
	go n.carry(n.up, n.cliTun, n.srvTun)
	go n.carry(n.down, n.srvTun, n.cliTun)
	return n, nil
}

func (n *Netns) carry(l *Line, from, to *os.File) {
	defer n.wg.Done()
	l.Pipe(from.Read, func(b []byte) error { _, err := to.Write(b); return err }) //nolint:errcheck // ends at Close
}

// ServerHost is the address servers listen on and clients dial.
func (n *Netns) ServerHost() string { return ServerIP }

// Command runs name with args inside the server's (server true) or the client's namespace.
func (n *Netns) Command(server bool, name string, args ...string) *exec.Cmd {
	ns := n.cliNS
	if server {
		ns = n.srvNS
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Counts returns what the link has carried so far, IP packets: up is client to server.
func (n *Netns) Counts() (up, down Counts) { return n.up.Stats().Snapshot(), n.down.Stats().Snapshot() }

// Close stops carrying packets and removes the devices and namespaces.
func (n *Netns) Close() error {
	var err error
	n.closeOnce.Do(func() {
		for _, f := range []*os.File{n.srvTun, n.cliTun} {
			if f != nil {
				f.Close()
			}
		}
		n.wg.Wait()
		for _, ns := range []string{n.srvNS, n.cliNS} {
			if nsExists(ns) {
				err = errors.Join(err, run("ip", "netns", "del", ns))
			}
		}
	})
	return err
}

var staleNS = regexp.MustCompile(`^fb-(srv|cli)-(\d+)(?:-\d+)?$`)

// CleanStale removes namespaces left by a bench that was killed before it could tidy up:
// ours by name, and only when the process that made them is gone.
func CleanStale() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleNS.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		err = errors.Join(err, run("ip", "netns", "del", f[0]))
	}
	return err
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// openTun creates a TUN device (IP packets, no packet-info header) in this process's
// namespace; it lives as long as the returned file.
func openTun(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var ifr struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], name)
	ifr.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), name), nil // non-blocking: reads go through the poller
}
