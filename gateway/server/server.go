// Package server is the gateway's device server: it accepts TCP connections from devices,
// runs the gateway role of the device protocol (protocol/) on each, offers what the catalog
// holds for the device's class and streams it from the cache. It sits at the end of the
// gateway's flow (upstream -> manifest -> cache -> catalog -> server) and records what each
// device reports through an injected Recorder.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/fotagate/fotagate/protocol"
)

// Config holds the server's limits. Zero fields take the defaults of DefaultConfig.
type Config struct {
	GatewayID        string
	MaxPayload       int           // largest chunk sent, 64..4096
	MaxSessions      int           // concurrent sessions; more are answered "busy"
	HandshakeTimeout time.Duration // from accept to a verified Accept
	IdleTimeout      time.Duration // longest wait for any read or write while streaming
	WriteBuffer      int           // bytes of a session's write buffer while its socket is full (see pools.go)
	MaxWrite         int           // largest write, made when the socket has room for it; not above WriteBuffer: off
	FailRate         rate.Limit    // failed handshakes per second allowed per source address
	FailBurst        int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		GatewayID:        "fotagate",
		MaxPayload:       protocol.MaxPayload,
		MaxSessions:      10000,
		HandshakeTimeout: 10 * time.Second,
		IdleTimeout:      30 * time.Second,
		WriteBuffer:      4864, // see pools.go
		MaxWrite:         64 << 10,
		FailRate:         1,
		FailBurst:        10,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.GatewayID == "" {
		c.GatewayID = d.GatewayID
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.WriteBuffer == 0 {
		c.WriteBuffer = d.WriteBuffer
	}
	if c.MaxWrite == 0 {
		c.MaxWrite = d.MaxWrite
	}
	if c.FailRate == 0 {
		c.FailRate, c.FailBurst = d.FailRate, d.FailBurst
	}
	c.WriteBuffer = max(c.WriteBuffer, protocol.HeaderSize+protocol.MaxPayload+protocol.TagSize)
}

// Device is what the server needs to know of a provisioned device.
type Device struct {
	Class string
	PSK   [protocol.KeySize]byte
}

// Devices looks devices up by ID (gateway/registry provides it).
type Devices interface {
	LookupDevice(id string) (Device, bool)
}

// Image is one verified image ready to serve.
type Image struct {
	Seq       uint32
	Size      uint32
	Digest    [protocol.DigestSize]byte
	Signature *[protocol.SignatureSize]byte // vendor signature over the image statement, if any
	Open      func() (ImageReader, error)
}

// ImageReader reads a cached image.
type ImageReader interface {
	io.ReaderAt
	io.Closer
}

// MemoryImage serves b as an image held in memory, as the gateway's cache serves the images it
// holds (cache.HoldInMemory): sessions seal straight from b (protocol.ImageBytes), which
// nothing may change while it is served.
func MemoryImage(b []byte) ImageReader { return memoryImage{bytes.NewReader(b), b} }

type memoryImage struct {
	*bytes.Reader
	b []byte
}

func (memoryImage) Close() error { return nil }

func (m memoryImage) ImageBytes() []byte { return m.b }

// Catalog says what a device of a class running a sequence should be offered: the newest
// image for the class when it is newer, nil when the device is up to date, or ErrRetry while
// the gateway is still fetching.
type Catalog interface {
	Latest(class string, running uint32) (*Image, error)
}

// ErrRetry tells a device to come back later.
var ErrRetry = errors.New("image not ready yet")

// Recorder receives what happens to devices. Calls come from many goroutines.
type Recorder interface {
	Record(Event)
}

// Event is one thing that happened in a session.
type Event struct {
	Kind     EventKind
	Session  uint64 // unique per connection in this process
	DeviceID string
	Remote   string
	Class    string
	Running  uint32
	Seq      uint32 // offered image
	Size     uint32
	Offset   uint32 // resumed from (Accepted), durable (Progress, Report)
	Reason   string // refusal or failure reason (protocol.Reason)
	Err      error
	Duration time.Duration
}

// EventKind says what an Event reports.
type EventKind int

const (
	EventHandshakeFailed EventKind = iota
	EventUpToDate
	EventRefused  // the device refused the offer (rollback, class, signature...)
	EventAccepted // streaming starts at Offset
	EventProgress // an Ack
	EventReport   // the device's verification result: Reason "ok" or its failure
	EventFailed   // the session broke off
	EventRetry    // the device was told to come back later (image still being fetched)
	// EventOffered: an image was offered and its stream starts at Offset, its first frames
	// right behind the Offer; EventAccepted or EventRefused follows once the device answers.
	EventOffered
)

func (k EventKind) String() string {
	return [...]string{"handshake_failed", "up_to_date", "refused", "accepted", "progress", "report", "failed", "retry", "offered"}[k]
}

// Server serves devices.
type Server struct {
	cfg     Config
	gwcfg   *protocol.GatewayConfig
	devices Devices
	catalog Catalog
	rec     Recorder
	log     *zap.Logger
	bufs    *writeBuffers
	sem     chan struct{}
	nextID  atomic.Uint64

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	conns    map[net.Conn]struct{}
	lns      []net.Listener
	closing  bool
	wg       sync.WaitGroup
}

// New builds a server. rec may be nil.
func New(cfg Config, devices Devices, catalog Catalog, rec Recorder, log *zap.Logger) (*Server, error) {
	cfg.fill()
	gw, err := protocol.NewGatewayConfig(cfg.GatewayID, cfg.MaxPayload, nil)
	if err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		cfg: cfg, gwcfg: gw, devices: devices, catalog: catalog, rec: rec, log: log,
		bufs:     newWriteBuffers(cfg.WriteBuffer, cfg.MaxWrite),
		sem:      make(chan struct{}, cfg.MaxSessions),
		limiters: map[string]*rate.Limiter{},
		conns:    map[net.Conn]struct{}{},
	}
	return s, nil
}

// ListenConfig is how to make the listener Serve takes: without TCP keep-alive, which the
// net package otherwise turns on for every accepted connection (15 s probes), at four
// setsockopt calls each. A session needs no probes: from the accept on, every wait has a
// deadline (HandshakeTimeout, then IdleTimeout), which cuts a vanished device sooner.
func ListenConfig() *net.ListenConfig {
	return &net.ListenConfig{KeepAlive: -1}
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		go s.handle(c)
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, lets running sessions finish until ctx ends, then cuts the
// rest; a cut device resumes from its durable offset with the next gateway.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Sessions is the number of sessions holding a slot under MaxSessions right now: from the
// accepted connection through the handshake and the transfer to the end of the session.
func (s *Server) Sessions() int { return len(s.sem) }

func (s *Server) record(e Event) {
	if s.rec != nil {
		s.rec.Record(e)
	}
}

func host(addr net.Addr) string {
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return h
}

// limiter returns the failed-handshake limiter of a source address.
func (s *Server) limiter(src string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limiters[src]
	if !ok {
		if len(s.limiters) > 100000 { // bounded memory under a spray of sources
			clear(s.limiters)
		}
		l = rate.NewLimiter(s.cfg.FailRate, s.cfg.FailBurst)
		s.limiters[src] = l
	}
	return l
}

// session is the state of one connection. It lives on the heap, and the functions that sit on
// a session's stack while it waits on the network (handle, handshake; streamAndClose, stream
// on the transfer's own goroutine) keep their frames small: the logging and event work is
// done in functions called between waits. A goroutine parked in a read then needs a 4 KiB
// stack rather than 8 (the runtime halves a parked stack at each collection while less than a
// quarter is in use), which is most of what an idle session costs (BenchmarkSessionMemory).
type session struct {
	srv     *Server
	id      uint64
	start   time.Time
	remote  string
	idle    idleConn
	dev     Device
	img     *Image
	retry   bool
	ev      Event // what is known so far: device, class and, once accepted, the image
	gc      *protocol.GatewayConn
	wbufs   sessionBuffers
	lim     *rate.Limiter
	release bool // holds a slot under MaxSessions
}

func (s *Server) handle(c net.Conn) {
	ss := &session{srv: s, id: s.nextID.Add(1), start: time.Now(), idle: idleConn{Conn: c, idle: s.cfg.IdleTimeout}}
	if ss.admit() {
		c.SetDeadline(ss.start.Add(s.cfg.HandshakeTimeout)) //nolint:errcheck // a failed deadline shows as a read error
		ss.gc = protocol.NewGatewayConn(&ss.idle, s.gwcfg)
		// Hello in, Offer out. An offered image streams from here, its first frames right
		// behind the Offer (PROTOCOL.md 4.4): the stream reads the Accept. Anything else
		// ends with the device's answer.
		hello, err := ss.gc.Offer(ss.lookup, ss.offerFor)
		var accept *protocol.Accept
		if err == nil && ss.gc.Session() == nil {
			accept, err = ss.gc.ReadAccept()
		}
		if sess := ss.handshakeDone(hello, accept, err); sess != nil {
			// The transfer runs on a goroutine of its own, whose stack grows only as far as the
			// data path needs (4 KiB). This one has grown through the handshake and its logging
			// to 8 KiB, and blocked in a write it would stay that size for the whole transfer:
			// the runtime halves a parked stack only while less than a quarter of it is in use.
			go ss.streamAndClose(sess)
			return
		}
	}
	ss.close()
}

// streamAndClose streams the image, then ends the session.
func (ss *session) streamAndClose(sess *protocol.GatewaySession) {
	ss.stream(sess)
	ss.close()
}

// close gives back the session's slot and closes and forgets its connection.
func (ss *session) close() {
	ss.end()
	ss.idle.Conn.Close()
	ss.srv.untrack(ss.idle.Conn)
}

// admit refuses a source that keeps failing handshakes, before any crypto work, and a
// connection beyond MaxSessions; otherwise the session takes a slot.
func (ss *session) admit() bool {
	s := ss.srv
	ss.remote = ss.idle.RemoteAddr().String()
	ss.lim = s.limiter(host(ss.idle.RemoteAddr()))
	if ss.lim.Tokens() < 1 {
		ss.idle.Write(protocol.AppendReject(nil, protocol.CodeBusy)) //nolint:errcheck // best effort
		s.log.Warn("handshake refused: too many failures from source", zap.String("remote", ss.remote))
		s.record(Event{Kind: EventHandshakeFailed, Session: ss.id, Remote: ss.remote, Reason: "rate_limited"})
		return false
	}
	select {
	case s.sem <- struct{}{}:
		ss.release = true
		return true
	default:
		ss.idle.Write(protocol.AppendReject(nil, protocol.CodeBusy)) //nolint:errcheck // best effort
		s.log.Warn("session refused: at the session cap", zap.Int("max_sessions", s.cfg.MaxSessions))
		s.record(Event{Kind: EventHandshakeFailed, Session: ss.id, Remote: ss.remote, Reason: "busy"})
		return false
	}
}

// logger names the session's device and remote address. It is made when a line is logged,
// not kept: a production logger's child holds its encoded fields, about 1 KiB a session.
// The lines a transfer logs on its way (Info) go through info instead, which costs no child.
func (ss *session) logger() *zap.Logger {
	return ss.srv.log.With(zap.String("device", ss.ev.DeviceID), zap.String("remote", ss.remote))
}

// info logs at Info with the fields logger adds, without making a child logger: a child
// clones the encoder and encodes its two fields again for each line, work (and garbage)
// that a line logged once per transfer does not need.
func (ss *session) info(msg string, fields ...zap.Field) {
	if ce := ss.srv.log.Check(zap.InfoLevel, msg); ce != nil {
		ce.Write(append(fields, zap.String("device", ss.ev.DeviceID), zap.String("remote", ss.remote))...)
	}
}

func (ss *session) end() {
	if ss.release {
		<-ss.srv.sem
	}
}

func (ss *session) lookup(id string) ([protocol.KeySize]byte, bool) {
	d, ok := ss.srv.devices.LookupDevice(id)
	ss.dev = d
	return d.PSK, ok
}

func (ss *session) offerFor(h *protocol.Hello) (*protocol.Offer, error) {
	i, err := ss.srv.catalog.Latest(ss.dev.Class, h.Running)
	switch {
	case errors.Is(err, ErrRetry):
		ss.retry = true
		return &protocol.Offer{Status: protocol.StatusRetry, RetryAfter: 30}, nil
	case err != nil: // e.g. a class the gateway does not serve: the device is told "unavailable"
		return nil, fmt.Errorf("%w: %v", protocol.ErrUnavailable, err)
	case i == nil || i.Seq <= h.Running:
		return &protocol.Offer{Status: protocol.StatusUpToDate}, nil
	}
	ss.img = i
	m := &protocol.Manifest{Seq: i.Seq, Size: i.Size, Class: ss.dev.Class, Digest: i.Digest}
	if i.Signature != nil {
		m.Signed, m.Signature = true, *i.Signature
	}
	return &protocol.Offer{Status: protocol.StatusOffer, Manifest: m}, nil
}

// handshakeDone records how the handshake ended and returns the data session, or nil when the
// session ends here.
func (ss *session) handshakeDone(hello *protocol.Hello, accept *protocol.Accept, err error) *protocol.GatewaySession {
	ev := Event{Session: ss.id, Remote: ss.remote, Class: ss.dev.Class}
	if hello != nil {
		ev.DeviceID, ev.Running = hello.DeviceID, hello.Running
	}
	ss.ev = ev
	if err != nil { // an offered image's Accept is read by the stream, so none is named here
		ss.handshakeEnded(ev, accept != nil, err)
		return nil
	}
	sess := ss.gc.Session()
	if sess == nil && ss.retry {
		ev.Kind = EventRetry
		ss.info("device told to retry: the image is still being fetched")
		ss.srv.record(ev)
		return nil
	}
	if sess == nil {
		ev.Kind = EventUpToDate
		if ce := ss.srv.log.Check(zap.DebugLevel, "device up to date"); ce != nil {
			ce.Write(zap.String("device", ev.DeviceID), zap.String("remote", ss.remote), zap.Uint32("running", hello.Running))
		}
		ss.srv.record(ev)
		return nil
	}
	// Offered: the stream reads the Accept (accepted records it), so every field of the
	// session's events is known now, before the stream's two goroutines share ss.ev.
	ev.Seq, ev.Size, ev.Offset = ss.img.Seq, ss.img.Size, sess.Start()
	ss.ev = ev
	ev.Kind = EventOffered
	ss.srv.record(ev)
	return sess
}

// handshakeEnded records a handshake that ended without a transfer. answered says the
// device's Accept was opened: its error, an authenticated *PeerError, is then its refusal of
// our offer. Anything else is a failed handshake, which spends one of the source's tokens:
// failures are what the limiter counts.
func (ss *session) handshakeEnded(ev Event, answered bool, err error) {
	ev.Reason, ev.Err = reasonOf(err), err
	var pe *protocol.PeerError
	if answered && errors.As(err, &pe) {
		ev.Kind = EventRefused
		ss.logger().Warn("device refused the offer", zap.String("reason", ev.Reason))
	} else {
		ev.Kind = EventHandshakeFailed
		ss.lim.Allow()
		ss.logger().Warn("handshake failed", zap.String("reason", ev.Reason), zap.Error(err))
	}
	ss.srv.record(ev)
}

// accepted records the device's ok Accept, which the stream's reader has opened.
func (ss *session) accepted(sess *protocol.GatewaySession) {
	ev := ss.ev
	ev.Kind = EventAccepted
	ss.srv.record(ev)
	// At Debug: the transfer's Info line is its end (streamDone), which says all this too,
	// and the start is in the Accepted event for whoever watches transfers live. An Info line
	// cost a 256 KiB transfer about 5% of the server's CPU (BenchmarkAggregateThroughput
	// with devices=100, when the JSON logs still had zap's float timestamps: the encoding,
	// and the stack growth that the float formatting forced on the session's small stack).
	if ce := ss.srv.log.Check(zap.DebugLevel, "streaming"); ce != nil {
		ce.Write(zap.String("device", ev.DeviceID), zap.String("remote", ss.remote), zap.Uint32("seq", ev.Seq),
			zap.Uint32("from", ev.Offset), zap.Uint32("size", ev.Size), zap.Uint16("chunk", sess.Manifest().Chunk))
	}
}

// stream sends the image through write buffers from the pools (pools.go).
func (ss *session) stream(sess *protocol.GatewaySession) {
	r, err := ss.img.Open()
	if err != nil {
		ss.unavailable(sess, err)
		return
	}
	defer r.Close()
	ss.idle.findSocket()
	ss.wbufs = sessionBuffers{w: ss.srv.bufs, conn: ss.idle.Conn}
	rep, err := ss.gc.StreamWith(r, &ss.wbufs, func(m protocol.DeviceMessage) {
		if m.Type == protocol.TypeAccept {
			ss.accepted(sess)
			return
		}
		ss.progress(m)
	})
	ss.streamDone(sess, rep, err)
}

func (ss *session) unavailable(sess *protocol.GatewaySession, err error) {
	out, _ := sess.AppendAlert(nil, protocol.CodeUnavailable)
	ss.idle.Conn.Write(out) //nolint:errcheck // best effort before closing
	ss.ev.Kind, ss.ev.Reason, ss.ev.Err = EventFailed, "unavailable", err
	ss.logger().Error("image unavailable", zap.Error(err))
	ss.srv.record(ss.ev)
}

func (ss *session) progress(m protocol.DeviceMessage) {
	ev := &ss.ev
	ss.srv.record(Event{Kind: EventProgress, Session: ss.id, DeviceID: ev.DeviceID, Remote: ss.remote, Class: ev.Class, Seq: ev.Seq, Size: ev.Size, Offset: m.Offset})
}

func (ss *session) streamDone(sess *protocol.GatewaySession, rep protocol.DeviceMessage, err error) {
	ev := ss.ev
	ev.Duration = time.Since(ss.start)
	if !sess.Accepted() { // the stream ended at the Accept: a refusal, or no (good) Accept
		ss.handshakeEnded(ev, rep.Type == protocol.TypeAccept, err)
		return
	}
	if err != nil {
		ev.Kind, ev.Reason, ev.Err, ev.Offset = EventFailed, reasonOf(err), err, sess.Acked()
		ss.logger().Warn("transfer ended early", zap.String("reason", ev.Reason), zap.Uint32("durable", ev.Offset), zap.Error(err))
		ss.srv.record(ev)
		return
	}
	ev.Kind, ev.Offset, ev.Reason = EventReport, rep.Offset, protocol.CodeName(rep.Code)
	if rep.Code == protocol.CodeOK {
		ss.info("device verified the image", zap.Uint32("seq", ev.Seq), zap.Uint32("from", sess.Start()), zap.Uint32("size", ev.Size),
			zap.Uint16("chunk", sess.Manifest().Chunk), zap.Duration("took", ev.Duration))
	} else {
		ss.logger().Warn("device rejected the image", zap.String("reason", ev.Reason))
	}
	ss.srv.record(ev)
}

// reasonOf names why a session failed: the protocol's reason, or what the network did.
func reasonOf(err error) string {
	r := protocol.Reason(err)
	if r != "other" {
		return r
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "closed"
	}
	return r
}

// How many bytes of the device's frames the kernel gathers before it wakes anything
// (SO_RCVLOWAT), once the device's Acks come. While the image goes out nothing waits to read:
// the stream looks at what has arrived between its writes (ReadPending). But each frame that
// arrives would still wake the runtime's network poller, and a thread with it, for nothing:
// with one device Acking every 32 KiB the server made a third more futex and epoll_pwait calls
// per MiB (BenchmarkOneDevice, counted with perf trace) until the mark went up. 1 KiB is more
// than arrives between two looks from a device that Acks at most every 2 KiB; one that Acks
// faster gets a reader goroutine (protocol.StreamWith), which this mark then wakes every 44
// Acks. Once the Final is written the Report is due and must get through alone: the mark
// drops to the size of a Report frame, one byte more than an Ack's, so Acks still wake the
// reader in pairs. The Accept must get through alone too: the mark goes up only with the
// first Acks, never before the Accept is open, and a device that never Acks never has it set.
const (
	gatherWhileSending = 1 << 10
	gatherForReport    = protocol.HeaderSize + protocol.ReportBody
)

// idleConn, once streaming, pushes the deadline forward on reads and writes, so a stalled
// peer is cut after the idle timeout while a slow but moving one is not. Until the device's
// Accept is open (the early frames go out before it) the fixed handshake deadline holds.
//
// Moving a deadline re-arms a runtime timer for each direction, which cost 3% of the server's
// CPU in BenchmarkAggregateThroughput when done on every write and read: it moves only when
// an eighth of the idle timeout has passed since it last moved, and then to 9/8 of the idle
// timeout ahead, so a stalled peer is cut between the idle timeout and 9/8 of it after its
// last read or write, never sooner than the configuration promises.
type idleConn struct {
	net.Conn
	idle      time.Duration
	streaming atomic.Bool
	moved     atomic.Int64    // when the deadline last moved, in time.Time.UnixNano
	raw       syscall.RawConn // the socket, once the stream starts (findSocket); nil without one
	mu        sync.Mutex      // orders the two marks below: the first Acks and the Final race
	finalOut  bool
	gathering bool // SO_RCVLOWAT is set to gatherWhileSending
}

// findSocket finds the socket for ReadPending.
func (c *idleConn) findSocket() {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw = rc
		}
	}
}

// AcceptOpened (protocol.AcceptWatcher): the handshake is over, so the idle timeout takes
// over.
func (c *idleConn) AcceptOpened() {
	c.streaming.Store(true)
	c.extend()
}

// ReadPending (protocol.PendingReader) hands the stream what the device has sent, without
// waiting, so that one goroutine both writes the image and reads the Acks (see
// protocol.PendingReader). A connection that reads so itself (bench/'s meter, which counts
// what passes) is asked; otherwise the socket is. Without a socket it never has anything:
// the Acks are then read once the Final is out. Once the device's frames come, they gather
// in the kernel (gatherWhileSending).
func (c *idleConn) ReadPending(p []byte) (int, error) {
	var n int
	var err error
	if pr, ok := c.Conn.(protocol.PendingReader); ok {
		n, err = pr.ReadPending(p)
	} else {
		n, err = ReadNow(c.raw, p)
	}
	if n > 0 {
		c.extend()
		c.gather()
	}
	return n, err
}

// gather raises the mark, unless it is up already or the Final is out (the Report must get
// through alone).
func (c *idleConn) gather() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.gathering && !c.finalOut {
		c.gathering = setRecvLowat(c.Conn, gatherWhileSending)
	}
}

// FinalWritten (protocol.FinalWatcher) lowers the mark so that a Report alone wakes the
// reader; lowering it also hands over whatever is queued already.
func (c *idleConn) FinalWritten() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finalOut = true
	if c.gathering {
		setRecvLowat(c.Conn, gatherForReport)
	}
}

func (c *idleConn) extend() {
	if !c.streaming.Load() {
		return
	}
	now := time.Now()
	if last := c.moved.Load(); last != 0 && now.UnixNano()-last < int64(c.idle/8) {
		return
	}
	c.moved.Store(now.UnixNano())
	c.Conn.SetDeadline(now.Add(c.idle + c.idle/8)) //nolint:errcheck // shows as an I/O error
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.extend()
	}
	return n, err
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.extend()
	return c.Conn.Write(p)
}
