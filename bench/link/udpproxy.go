package link

import (
	"errors"
	"net"
	"sync"
)

// UDPProxy relays datagrams between clients and one upstream address, through a Line each
// way per client: the fallback for UDP peers when namespaces are not available. Each client
// gets its own upstream socket, so the upstream sees one address per client as it would
// without the proxy.
type UDPProxy struct {
	ln       *net.UDPConn
	upstream *net.UDPAddr
	up, down LineConfig
	seed     uint64

	mu      sync.Mutex
	clients map[string]*udpClient
	closed  bool
	served  chan struct{} // closed when serve returns
	wg      sync.WaitGroup
	upSt    []*Stats
	downSt  []*Stats
}

type udpClient struct {
	addr *net.UDPAddr
	conn *net.UDPConn // to upstream
	in   chan []byte  // datagrams from the client, read by the up line
}

// NewUDPProxy listens on listen (host:port, port 0 for any) and relays to upstream.
func NewUDPProxy(listen, upstream string, up, down LineConfig, seed uint64) (*UDPProxy, error) {
	la, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	p := &UDPProxy{ln: ln, upstream: ua, up: up, down: down, seed: seed, clients: map[string]*udpClient{}, served: make(chan struct{})}
	go p.serve()
	return p, nil
}

// Addr is the address clients send to.
func (p *UDPProxy) Addr() string { return p.ln.LocalAddr().String() }

// Counts sums the counters of every client's lines so far: up is client to upstream.
func (p *UDPProxy) Counts() (up, down Counts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.upSt {
		up = add(up, s.Snapshot())
	}
	for _, s := range p.downSt {
		down = add(down, s.Snapshot())
	}
	return up, down
}

func add(a, b Counts) Counts {
	return Counts{a.Packets + b.Packets, a.Bytes + b.Bytes, a.Dropped + b.Dropped, a.Delivered + b.Delivered, a.DeliveredBytes + b.DeliveredBytes}
}

func (p *UDPProxy) serve() {
	defer close(p.served)
	buf := make([]byte, 65536)
	for {
		n, from, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		c, err := p.client(from)
		if err != nil {
			continue
		}
		select {
		case c.in <- append([]byte(nil), buf[:n]...):
		default: // the client's line is saturated: a full socket buffer drops too
		}
	}
}

func (p *UDPProxy) client(from *net.UDPAddr) (*udpClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if c, ok := p.clients[from.String()]; ok {
		return c, nil
	}
	conn, err := net.DialUDP("udp", nil, p.upstream)
	if err != nil {
		return nil, err
	}
	c := &udpClient{addr: from, conn: conn, in: make(chan []byte, 1024)}
	p.clients[from.String()] = c
	n := uint64(len(p.clients))
	upLine, downLine := NewLine(p.up, p.seed+2*n), NewLine(p.down, p.seed+2*n+1)
	p.upSt = append(p.upSt, upLine.Stats())
	p.downSt = append(p.downSt, downLine.Stats())
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		upLine.Pipe(func(b []byte) (int, error) { //nolint:errcheck // ends when the proxy closes
			d, ok := <-c.in
			if !ok {
				return 0, net.ErrClosed
			}
			return copy(b, d), nil
		}, func(b []byte) error { _, err := c.conn.Write(b); return err })
	}()
	go func() {
		defer p.wg.Done()
		downLine.Pipe(c.conn.Read, func(b []byte) error { //nolint:errcheck // ends when the proxy closes
			_, err := p.ln.WriteToUDP(b, c.addr)
			return err
		})
	}()
	return c, nil
}

// Close stops the proxy and waits for its goroutines.
func (p *UDPProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	<-p.served // nothing sends to a client's channel any more
	p.mu.Lock()
	for _, c := range p.clients {
		close(c.in)
		err = errors.Join(err, c.conn.Close())
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
