package harness

import (
	"fmt"
	"io"
	"os/exec"

	"github.com/fotagate/fotagate/bench/link"
)

// env is where a profile's children run and how the device reaches the server.
type env interface {
	serverHost() string
	command(server bool, exe string, args []string) *exec.Cmd
	// route returns the address the device dials to reach a server at addr, and what to close
	// when that server is done with.
	route(network, addr string) (string, io.Closer, error)
	// counts reports what the link carried so far, when it sees IP packets.
	counts() (up, down link.Counts, ok bool)
	describe() string
	Close() error
}

// Link modes.
const (
	LinkAuto  = "auto"  // namespaces when possible, else proxies
	LinkNetns = "netns" // namespaces or fail
	LinkProxy = "proxy" // proxies on loopback
)

// newEnv builds profile p's link; id tells apart links that exist at the same time.
func newEnv(p link.Profile, mode string, seed uint64, id int) (env, error) {
	if !p.Emulated() {
		return loopback{}, nil
	}
	switch mode {
	case LinkAuto, LinkNetns:
		err := link.NetnsAvailable()
		if err == nil {
			if err = link.CleanStale(); err != nil {
				return nil, fmt.Errorf("removing namespaces of a killed run: %w", err)
			}
			var n *link.Netns
			if n, err = link.NewNetns(p, seed, id); err == nil {
				return netnsEnv{n}, nil
			}
		}
		if mode == LinkNetns {
			return nil, fmt.Errorf("link %s: %w", p.Name, err)
		}
		return proxyEnv{p: p, seed: seed, why: err.Error()}, nil
	case LinkProxy:
		return proxyEnv{p: p, seed: seed, why: "asked for"}, nil
	}
	return nil, fmt.Errorf("link mode %q unknown (auto, netns, proxy)", mode)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

type loopback struct{}

func (loopback) serverHost() string { return "127.0.0.1" }
func (loopback) command(_ bool, exe string, args []string) *exec.Cmd {
	return exec.Command(exe, args...)
}
func (loopback) route(_, addr string) (string, io.Closer, error) { return addr, nopCloser{}, nil }
func (loopback) counts() (up, down link.Counts, ok bool)         { return }
func (loopback) describe() string                                { return "loopback (127.0.0.1), no emulation" }
func (loopback) Close() error                                    { return nil }

type netnsEnv struct{ n *link.Netns }

func (e netnsEnv) serverHost() string { return e.n.ServerHost() }
func (e netnsEnv) command(server bool, exe string, args []string) *exec.Cmd {
	return e.n.Command(server, exe, args...)
}
func (e netnsEnv) route(_, addr string) (string, io.Closer, error) { return addr, nopCloser{}, nil }
func (e netnsEnv) counts() (up, down link.Counts, ok bool) {
	up, down = e.n.Counts()
	return up, down, true
}
func (e netnsEnv) describe() string {
	return "network namespaces: server and device each in a namespace of their own, joined by TUN devices; " +
		"rate by tc tbf on each TUN (burst 3028 B, queue 100 ms); half the round trip and the loss added per IP packet " +
		"by the bench as it carries packets between the TUNs"
}
func (e netnsEnv) Close() error { return e.n.Close() }

// proxyEnv emulates the link with proxies on loopback, when namespaces cannot be had.
type proxyEnv struct {
	p    link.Profile
	seed uint64
	why  string
}

func (proxyEnv) serverHost() string { return "127.0.0.1" }
func (proxyEnv) command(_ bool, exe string, args []string) *exec.Cmd {
	return exec.Command(exe, args...)
}
func (e proxyEnv) route(network, addr string) (string, io.Closer, error) {
	if network == "udp" {
		line := link.LineConfig{Delay: e.p.RTT / 2, Rate: e.p.Rate, Loss: e.p.Loss}
		px, err := link.NewUDPProxy("127.0.0.1:0", addr, line, line, e.seed)
		if err != nil {
			return "", nil, err
		}
		return px.Addr(), px, nil
	}
	px, err := link.NewTCPProxy("127.0.0.1:0", addr, e.p)
	if err != nil {
		return "", nil, err
	}
	return px.Addr(), px, nil
}
func (proxyEnv) counts() (up, down link.Counts, ok bool) { return }
func (e proxyEnv) describe() string {
	s := "proxies on loopback (namespaces not used: " + e.why + "): TCP through toxiproxy (latency RTT/2 and bandwidth toxics " +
		"each way; TCP ends at the proxy, so windows see loopback round trips"
	if e.p.Loss > 0 {
		s += "; no loss for TCP: toxiproxy cannot drop packets"
	}
	return s + "), UDP through the bench's UDPProxy (a Line each way: delay, rate, loss)"
}
func (proxyEnv) Close() error { return nil }
