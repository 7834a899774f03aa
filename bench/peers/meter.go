package peers

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fotagate/fotagate/gateway/server"
)

// Session is what one server connection carried, as the server saw it: payload bytes of the
// transport (TCP stream bytes, UDP datagram payloads), both ways, and the process CPU time
// spent while it was open.
type Session struct {
	Remote   string `json:"remote"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
	Reads    int64  `json:"reads"`  // read calls that returned data
	Writes   int64  `json:"writes"` // write calls (one syscall each on TCP, one datagram on UDP)
	MaxWrite int64  `json:"max_write"`
	// Marked is true when the peer told the meter where the image data began; the handshake
	// figures are only meaningful then.
	Marked bool `json:"marked"`
	// HandshakeIn and HandshakeOut are the bytes before the first write of image data.
	HandshakeIn  int64 `json:"handshake_in"`
	HandshakeOut int64 `json:"handshake_out"`
	// HandshakeTurns counts the server's turns from reading to writing up to and including that
	// first data write: each is a flight the device sent and waited on.
	HandshakeTurns int           `json:"handshake_turns"`
	CPUUser        time.Duration `json:"cpu_user_ns"`
	CPUSys         time.Duration `json:"cpu_sys_ns"`
	Wall           time.Duration `json:"wall_ns"`
	MaxRSS         int64         `json:"max_rss"` // the process's peak resident set at close, bytes
}

// Meter counts what a server's connections carry and reports one Session when each closes. The
// CPU figures are the whole process's (getrusage RUSAGE_SELF) over the session's life, so a
// server process must serve one session at a time for them to mean anything.
type Meter struct {
	done func(Session)
	mu   sync.Mutex
	live map[string]*counter
}

// NewMeter returns a meter that passes every finished session to done.
func NewMeter(done func(Session)) *Meter {
	return &Meter{done: done, live: map[string]*counter{}}
}

// Mark tells the meter that the server's next write to remote starts the image data.
func (m *Meter) Mark(remote string) {
	m.mu.Lock()
	c := m.live[remote]
	m.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		c.marked = true
		c.mu.Unlock()
	}
}

func (m *Meter) open(remote string) *counter {
	c := &counter{m: m, start: time.Now(), s: Session{Remote: remote}}
	unix.Getrusage(unix.RUSAGE_SELF, &c.ru0) //nolint:errcheck // cannot fail with these arguments
	m.mu.Lock()
	m.live[remote] = c
	m.mu.Unlock()
	return c
}

type counter struct {
	m        *Meter
	start    time.Time
	ru0      unix.Rusage
	once     sync.Once
	mu       sync.Mutex
	s        Session
	lastRead bool
	marked   bool
	turns    int
}

func (c *counter) read(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.s.BytesIn += int64(n)
	c.s.Reads++
	c.lastRead = true
	c.mu.Unlock()
}

// writing comes before each write: if the peer has marked the start of the image, this write
// carries its first bytes, and what came before was the handshake. Taking the snapshot before
// the write matters: on loopback the device can answer a write before it returns.
func (c *counter) writing() {
	c.mu.Lock()
	if !c.s.Marked {
		if c.lastRead {
			c.turns++
		}
		c.lastRead = false
		if c.marked {
			c.s.Marked = true
			c.s.HandshakeIn, c.s.HandshakeOut, c.s.HandshakeTurns = c.s.BytesIn, c.s.BytesOut, c.turns
		}
	}
	c.mu.Unlock()
}

// wrote counts a write after it returns.
func (c *counter) wrote(n int) {
	c.mu.Lock()
	c.s.BytesOut += int64(n)
	c.s.Writes++
	c.s.MaxWrite = max(c.s.MaxWrite, int64(n))
	c.mu.Unlock()
}

func (c *counter) close() {
	c.once.Do(func() {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru) //nolint:errcheck // cannot fail with these arguments
		c.m.mu.Lock()
		if c.m.live[c.s.Remote] == c {
			delete(c.m.live, c.s.Remote)
		}
		c.m.mu.Unlock()
		c.mu.Lock()
		s := c.s
		c.mu.Unlock()
		s.Wall = time.Since(c.start)
		s.CPUUser = time.Duration(unix.TimevalToNsec(ru.Utime) - unix.TimevalToNsec(c.ru0.Utime))
		s.CPUSys = time.Duration(unix.TimevalToNsec(ru.Stime) - unix.TimevalToNsec(c.ru0.Stime))
		s.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
		if c.m.done != nil {
			c.m.done(s)
		}
	})
}

// Listener returns ln with every accepted connection counted.
func (m *Meter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, m: m} }

type listener struct {
	net.Listener
	m *Meter
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, c: l.m.open(c.RemoteAddr().String())}, nil
}

// conn counts a server connection's bytes; Close ends its session.
type conn struct {
	net.Conn
	c *counter
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.read(n)
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	c.c.writing()
	n, err := c.Conn.Write(p)
	c.c.wrote(n)
	return n, err
}

// SyscallConn passes the socket through, so that a server which tunes its socket options (the
// gateway reads its send queue) sees the same socket it would without the meter. The server
// never reads or writes through it (it reads without waiting through ReadPending), so the
// counts stay whole.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// ReadPending is the gateway's read of what has arrived, without waiting
// (protocol.PendingReader, server.ReadNow), counted as any read; 0 and nil when nothing has
// arrived.
func (c *conn) ReadPending(p []byte) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, nil // no socket to look into: nothing pending
	}
	n, err := server.ReadNow(rc, p)
	if n > 0 {
		c.c.read(n)
	}
	return n, err
}

// CloseWrite half-closes a TCP connection.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.c.close()
	return err
}
