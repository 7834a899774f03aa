// Package testgw is a minimal gateway role for devicelib's tests: it serves one image from
// memory over loopback with protocol.GatewayConn, records every session, and can cut a
// connection after a given number of bytes. It is no model for gateway/server: no registry,
// no cache, no limits beyond a per-connection deadline.
package testgw

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// Session is what the gateway saw of one connection.
type Session struct {
	N      int              // 1-based connection number
	Hello  *protocol.Hello  // nil if none parsed
	Offer  protocol.Offer   // what was offered
	Accept *protocol.Accept // nil if none received
	Acks   []uint32         // durable offsets acknowledged, in order
	Report *protocol.DeviceMessage
	Err    error
}

// BootCounter is the counter the device put in its nonce.
func (s *Session) BootCounter() uint32 {
	nd := s.Hello.Nd[protocol.NonceSize-4:]
	return uint32(nd[0])<<24 | uint32(nd[1])<<16 | uint32(nd[2])<<8 | uint32(nd[3])
}

// Gateway is a running test gateway.
type Gateway struct {
	Addr string

	ln       net.Listener
	cfg      *protocol.GatewayConfig
	keys     map[string][protocol.KeySize]byte
	sessions chan Session
	conns    atomic.Int64
	wg       sync.WaitGroup

	mu    sync.Mutex
	img   []byte
	m     protocol.Manifest
	offer func(*protocol.Hello) protocol.Offer
	cut   func(n int) int64
}

// Start runs a gateway with ID "gw-test" on 127.0.0.1 that knows keys and serves chunks of
// at most maxPayload. It stops when the test ends.
func Start(t testing.TB, maxPayload int, keys map[string][protocol.KeySize]byte) *Gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := protocol.NewGatewayConfig("gw-test", maxPayload, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{Addr: ln.Addr().String(), ln: ln, cfg: cfg, keys: keys, sessions: make(chan Session, 4096)}
	g.wg.Add(1)
	go g.serve()
	t.Cleanup(func() {
		ln.Close()
		g.wg.Wait()
	})
	return g
}

// Image builds the manifest of img for class with sequence seq, signed by vendor if given.
func Image(img []byte, class string, seq uint32, vendor ed25519.PrivateKey) protocol.Manifest {
	m := protocol.Manifest{Seq: seq, Size: uint32(len(img)), Class: class, Digest: sha256.Sum256(img)}
	if vendor != nil {
		st := m.Statement()
		sig, err := st.Sign(vendor)
		if err != nil {
			panic(err)
		}
		m.Signed, m.Signature = true, sig
	}
	return m
}

// Serve makes the gateway offer img with manifest m to devices running an older sequence,
// and answer up to date otherwise.
func (g *Gateway) Serve(img []byte, m protocol.Manifest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.img, g.m, g.offer = img, m, nil
}

// SetOffer replaces the offer policy; with StatusOffer, the manifest must be that of the
// image given to Serve.
func (g *Gateway) SetOffer(f func(*protocol.Hello) protocol.Offer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.offer = f
}

// SetCut makes connection n close after cut(n) bytes written by the gateway (0: no cut).
// cut is called with the gateway locked, one call at a time.
func (g *Gateway) SetCut(cut func(n int) int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = cut
}

// Next waits up to 20 s for the next finished session.
func (g *Gateway) Next(t testing.TB) Session {
	t.Helper()
	select {
	case s := <-g.sessions:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("testgw: no session finished within 20 s")
		return Session{}
	}
}

func (g *Gateway) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		n := int(g.conns.Add(1))
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer c.Close()
			s := g.session(c, n)
			g.sessions <- s
		}()
	}
}

func (g *Gateway) session(c net.Conn, n int) Session {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	g.mu.Lock()
	img, m, offerFor := g.img, g.m, g.offer
	var limit int64
	if g.cut != nil {
		limit = g.cut(n)
	}
	g.mu.Unlock()
	var rw io.ReadWriter = c
	if limit > 0 {
		cc := &cutConn{Conn: c}
		cc.left.Store(limit)
		rw = cc
		// Every byte before the cut must arrive: closing with the device's Acks unread
		// would send a reset, and the device's kernel could drop data it had received. So
		// the cut only ends the gateway's direction, and the rest is read until the device
		// hangs up.
		defer func() {
			if cc.cut.Load() {
				io.Copy(io.Discard, c) //nolint:errcheck // draining until the device closes
			}
		}()
	}
	s := Session{N: n}
	gc := protocol.NewGatewayConn(rw, g.cfg)
	lookup := func(id string) ([protocol.KeySize]byte, bool) {
		k, ok := g.keys[id]
		return k, ok
	}
	hello, acc, err := gc.Handshake(lookup, func(h *protocol.Hello) (*protocol.Offer, error) {
		var o protocol.Offer
		switch {
		case offerFor != nil:
			o = offerFor(h)
		case img == nil:
			return nil, errors.New("testgw: nothing to serve")
		case h.Running < m.Seq:
			o = protocol.Offer{Status: protocol.StatusOffer, Manifest: &m}
		default:
			o = protocol.Offer{Status: protocol.StatusUpToDate}
		}
		s.Offer = o
		return &o, nil
	})
	if hello != nil {
		h := *hello
		s.Hello = &h
	}
	s.Accept = acc
	if err != nil || gc.Session() == nil {
		s.Err = err
		return s
	}
	// On an error Stream may return before its reader stops calling back: lock the acks.
	var mu sync.Mutex
	var acks []uint32
	rep, err := gc.Stream(bytes.NewReader(img), make([]byte, 16<<10), func(msg protocol.DeviceMessage) {
		mu.Lock()
		acks = append(acks, msg.Offset)
		mu.Unlock()
	})
	mu.Lock()
	s.Acks = append([]uint32(nil), acks...)
	mu.Unlock()
	if err == nil || rep.Type == protocol.TypeReport {
		s.Report = &rep
	}
	s.Err = err
	return s
}

// cutConn ends the gateway's direction of the connection once its write budget is spent.
type cutConn struct {
	net.Conn
	left atomic.Int64
	cut  atomic.Bool
}

func (c *cutConn) Write(p []byte) (int, error) {
	left := c.left.Add(-int64(len(p)))
	if left >= 0 {
		return c.Conn.Write(p)
	}
	keep := max(int64(len(p))+left, 0)
	if keep > 0 {
		c.Conn.Write(p[:keep])
	}
	c.cut.Store(true)
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
	} else {
		c.Conn.Close()
	}
	return int(keep), io.ErrClosedPipe
}
