package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap/zaptest"
)

// server is a loopback HTTPS endpoint a test talks to.
type server struct {
	URL        string       // https://127.0.0.1:port
	handshakes atomic.Int32 // TLS ClientHellos received
}

type connKey struct{}

// startH2 serves h over TLS with HTTP/2 on 127.0.0.1. mod may adjust the TLS config (mTLS).
func startH2(t *testing.T, cert tls.Certificate, h http.Handler, mod ...func(*tls.Config)) *server {
	t.Helper()
	s := &server{}
	hs := httptest.NewUnstartedServer(h)
	hs.EnableHTTP2 = true
	hs.TLS = s.tlsConfig(cert, mod)
	// The raw connection, so a handler can cut it the way a failing network would.
	hs.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	hs.StartTLS()
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// startH3 serves h over HTTP/3 on a UDP port of 127.0.0.1.
func startH3(t *testing.T, cert tls.Certificate, h http.Handler, mod ...func(*tls.Config)) *server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{URL: "https://" + pc.LocalAddr().String()}
	hs := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(s.tlsConfig(cert, mod))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(pc)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		_ = pc.Close()
		<-done
	})
	return s
}

func (s *server) tlsConfig(cert tls.Certificate, mod []func(*tls.Config)) *tls.Config {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.handshakes.Add(1)
			return nil, nil
		},
	}
	for _, m := range mod {
		m(cfg)
	}
	return cfg
}

// seen is what a fake vendor recorded of one request.
type seen struct {
	proto                    int
	host, rng, ifRange, ifNM string
}

// vendor is a fake firmware server: one resource served by http.ServeContent (so ranges,
// ETag, If-None-Match and If-Range behave as in a real server), with knobs to misbehave on
// the n-th request (counting from 0), and a record of every request.
type vendor struct {
	content []byte
	etag    string // sent as ETag unless empty
	altSvc  string // sent as Alt-Svc unless empty; setAltSvc changes it while serving

	cutAfter    map[int]int                                              // cut the connection after this many body bytes
	stallAfter  map[int]int                                              // stop sending after this many body bytes
	ignoreRange map[int]bool                                             // answer 200 with the whole body
	etagAt      map[int]string                                           // a different ETag for this request
	handle      func(n int, w http.ResponseWriter, r *http.Request) bool // takes over a request when it returns true

	mu   sync.Mutex
	reqs []seen
}

func (v *vendor) setAltSvc(s string) {
	v.mu.Lock()
	v.altSvc = s
	v.mu.Unlock()
}

func (v *vendor) requests() []seen {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]seen(nil), v.reqs...)
}

func (v *vendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	n := len(v.reqs)
	v.reqs = append(v.reqs, seen{
		proto: r.ProtoMajor, host: r.Host, rng: r.Header.Get("Range"),
		ifRange: r.Header.Get("If-Range"), ifNM: r.Header.Get("If-None-Match"),
	})
	altSvc := v.altSvc
	v.mu.Unlock()

	if altSvc != "" {
		w.Header().Set("Alt-Svc", altSvc)
	}
	if v.handle != nil && v.handle(n, w, r) {
		return
	}
	etag := v.etag
	if e, ok := v.etagAt[n]; ok {
		etag = e
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	if limit, ok := v.cutAfter[n]; ok {
		w = &stopWriter{ResponseWriter: w, left: limit, stop: func() { cut(r) }}
	}
	if limit, ok := v.stallAfter[n]; ok {
		w = &stopWriter{ResponseWriter: w, left: limit, stop: func() { <-r.Context().Done() }}
	}
	if v.ignoreRange[n] {
		w.Header().Set("Content-Length", strconv.Itoa(len(v.content)))
		_, _ = w.Write(v.content)
		return
	}
	http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(v.content))
}

// cut ends a response the way a broken network does: over TCP it closes the socket under
// TLS and HTTP/2; over QUIC, where a handler cannot reach the connection, it resets the
// stream. The pause first lets the client take in what was sent, so the test knows how
// far it got.
func cut(r *http.Request) {
	time.Sleep(50 * time.Millisecond)
	if c, ok := r.Context().Value(connKey{}).(*tls.Conn); ok {
		_ = c.NetConn().Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// stopWriter passes on left bytes, flushes them, and then calls stop and fails.
type stopWriter struct {
	http.ResponseWriter
	left int
	stop func()
}

var errStopped = errors.New("test server stopped the body")

func (s *stopWriter) Write(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, errStopped
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := s.ResponseWriter.Write(p)
	s.left -= n
	if err == nil && s.left == 0 {
		s.ResponseWriter.(http.Flusher).Flush()
		s.stop()
		err = errStopped
	}
	return n, err
}

// endless streams data until the client goes away.
func endless(w http.ResponseWriter, r *http.Request) {
	chunk := bytes.Repeat([]byte("x"), 4096)
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

// fakeClock records sleeps and returns at once; Now moves only when told or slept.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	f.mu.Unlock()
	return ctx.Err()
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// testConfig trusts ca, speaks transport, and keeps every wait short.
func testConfig(ca *testCA, transport string) Config {
	return Config{
		CABundle:         ca.pemPath,
		Transport:        transport,
		DialTimeout:      2 * time.Second,
		HandshakeTimeout: 2 * time.Second,
		IdleTimeout:      3 * time.Second,
		Timeout:          20 * time.Second,
		BackoffBase:      time.Millisecond,
		BackoffMax:       8 * time.Millisecond,
		Clock:            newFakeClock(),
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// content makes n bytes that differ at every offset a test would cut at, so a misplaced
// resume shows.
func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// protoCase is one protocol the table tests run over.
type protoCase struct {
	name      string
	transport string
	start     func(t *testing.T, cert tls.Certificate, h http.Handler, mod ...func(*tls.Config)) *server
	want      string
}

var overBoth = []protoCase{
	{"h2", TransportH2, startH2, ProtoH2},
	{"h3", TransportH3, startH3, ProtoH3},
}

func mustErrIs(t *testing.T, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("error %v\nis not %v", err, target)
		}
	}
}

func describe(rs []seen) string { return fmt.Sprintf("%+v", rs) }
