package peers

import (
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// packetListener gives pion's DTLS listener one net.PacketConn per remote address on a UDP
// socket it owns, so that every datagram is counted by the meter: pion's own listener opens
// its socket itself and offers no hook. A new address is accepted only with a DTLS handshake
// record, as pion's listener does.
type packetListener struct {
	pc     net.PacketConn
	m      *Meter
	accept chan *peerConn
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	peers map[string]*peerConn
}

const dtlsContentHandshake = 22

func newPacketListener(pc net.PacketConn, m *Meter) *packetListener {
	l := &packetListener{pc: pc, m: m, accept: make(chan *peerConn, 16), done: make(chan struct{}), peers: map[string]*peerConn{}}
	go l.loop()
	return l
}

func (l *packetListener) loop() {
	buf := make([]byte, 65536)
	for {
		n, from, err := l.pc.ReadFrom(buf)
		if err != nil {
			l.Close()
			return
		}
		key := from.String()
		l.mu.Lock()
		p := l.peers[key]
		if p == nil && n > 0 && buf[0] == dtlsContentHandshake {
			p = &peerConn{l: l, addr: from, c: l.m.open(key), in: make(chan []byte, 512), rd: deadline.New(), closed: make(chan struct{})}
			l.peers[key] = p
			select {
			case l.accept <- p:
			default: // nobody is accepting: forget it, as a full backlog would
				delete(l.peers, key)
				p = nil
			}
		}
		l.mu.Unlock()
		if p == nil {
			continue
		}
		select {
		case p.in <- append([]byte(nil), buf[:n]...):
		default: // a full receive buffer drops the datagram
		}
	}
}

func (l *packetListener) Accept() (net.PacketConn, net.Addr, error) {
	select {
	case p := <-l.accept:
		return p, p.addr, nil
	case <-l.done:
		return nil, nil, net.ErrClosed
	}
}

func (l *packetListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.pc.Close()
	})
	return err
}

func (l *packetListener) Addr() net.Addr { return l.pc.LocalAddr() }

// peerConn is one remote's view of the socket.
type peerConn struct {
	l      *packetListener
	addr   net.Addr
	c      *counter
	in     chan []byte
	rd     *deadline.Deadline
	closed chan struct{}
	once   sync.Once
}

func (p *peerConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-p.in:
		n := copy(b, d)
		p.c.read(n)
		return n, p.addr, nil
	case <-p.closed:
		return 0, nil, net.ErrClosed
	case <-p.l.done:
		return 0, nil, net.ErrClosed
	case <-p.rd.Done():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (p *peerConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	p.c.writing()
	n, err := p.l.pc.WriteTo(b, p.addr)
	p.c.wrote(n)
	return n, err
}

func (p *peerConn) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.l.mu.Lock()
		if p.l.peers[p.addr.String()] == p {
			delete(p.l.peers, p.addr.String())
		}
		p.l.mu.Unlock()
		p.c.close()
	})
	return nil
}

func (p *peerConn) LocalAddr() net.Addr                { return p.l.pc.LocalAddr() }
func (p *peerConn) SetDeadline(t time.Time) error      { p.rd.Set(t); return nil }
func (p *peerConn) SetReadDeadline(t time.Time) error  { p.rd.Set(t); return nil }
func (p *peerConn) SetWriteDeadline(t time.Time) error { return nil }
