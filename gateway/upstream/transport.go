package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap"
)

// maxHeaderBytes bounds response headers: the one part of a response the body limits don't
// cover.
const maxHeaderBytes = 64 << 10

// conns holds the HTTP/2 and HTTP/3 transports built from one Trust snapshot. A snapshot's
// roots can only be given to crypto/tls at connection set-up, so a new Trust gets new
// transports; the old ones finish the attempts already using them and are then closed.
type conns struct {
	h2 *http.Transport
	h3 *http3.Transport

	mu      sync.Mutex
	users   int
	retired bool
}

func newConns(cfg Config, t *Trust) *conns {
	td := &tlsDialer{
		dialer:  &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		tls:     t.tlsConfig(),
		timeout: cfg.HandshakeTimeout,
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true) // only when the server offers no h2 in ALPN; same TLS either way
	protos.SetHTTP2(true)
	h2 := &http.Transport{
		// No proxy: HTTP/3 could not use one, and a proxy from the environment would make
		// the two transports reach the vendor by different paths.
		Proxy:                  nil,
		DialTLSContext:         td.dialTLS,
		ResponseHeaderTimeout:  cfg.IdleTimeout,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    2,
		MaxResponseHeaderBytes: maxHeaderBytes,
		// Sizes and ranges refer to the bytes on the wire; transparent gzip would change both.
		DisableCompression: true,
		Protocols:          protos,
	}
	h3 := &http3.Transport{
		TLSClientConfig: t.tlsConfig(),
		QUICConfig: &quic.Config{
			HandshakeIdleTimeout: cfg.HandshakeTimeout,
			MaxIdleTimeout:       max(cfg.IdleTimeout, 30*time.Second),
		},
		MaxResponseHeaderBytes: maxHeaderBytes,
		DisableCompression:     true,
	}
	return &conns{h2: h2, h3: h3}
}

// tlsDialer makes the TCP+TLS connections of the HTTP/2 transport. net/http could do it
// from a tls.Config alone; doing it here lets an attempt learn which of its connections the
// server asked for a client certificate on (see certProbe).
type tlsDialer struct {
	dialer  *net.Dialer
	tls     *tls.Config
	timeout time.Duration
}

func (d *tlsDialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	raw, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		raw.Close()
		return nil, err
	}
	cfg := d.tls.Clone()
	cfg.ServerName = host
	cfg.NextProtos = []string{"h2", "http/1.1"}
	var asked atomic.Bool
	get := cfg.GetClientCertificate
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Store(true)
		return get(cri)
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	if asked.Load() && tc.ConnectionState().Version >= tls.VersionTLS13 {
		if p, ok := ctx.Value(certProbeKey{}).(*certProbe); ok {
			p.add(tc)
		}
	}
	return tc, nil
}

// certProbe collects the TLS 1.3 connections of one attempt on which the server asked for
// our certificate. In TLS 1.3 the server judges that certificate only after the client has
// finished its handshake, and answers a refusal with an alert that net/http's HTTP/2 client
// can lose in a race ("client conn could not be established"). crypto/tls keeps a received
// alert as the connection's sticky read error, so after a failed attempt the probe reads it
// back, and the caller learns its certificate was refused instead of seeing a network error
// it would retry.
type certProbe struct {
	mu    sync.Mutex
	conns []*tls.Conn
}

type certProbeKey struct{}

func (p *certProbe) add(tc *tls.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, tc)
	p.mu.Unlock()
}

// refusal returns the client-certificate alert one of the connections received, if any.
// It runs only after its attempt failed without a response, when these connections are
// dead; the past deadline keeps it from ever waiting on one that is not.
func (p *certProbe) refusal() error {
	p.mu.Lock()
	conns := p.conns
	p.mu.Unlock()
	var one [1]byte
	for _, tc := range conns {
		_ = tc.SetReadDeadline(time.Unix(1, 0))
		if _, err := tc.Read(one[:]); err != nil && isClientCertAlert(err) {
			return err
		}
	}
	return nil
}

// acquire counts an attempt in; false means these transports were retired meanwhile and
// the caller must take the current ones.
func (c *conns) acquire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired {
		return false
	}
	c.users++
	return true
}

func (c *conns) release() {
	c.mu.Lock()
	c.users--
	last := c.retired && c.users == 0
	c.mu.Unlock()
	if last {
		c.close()
	}
}

// retire closes the transports once no attempt uses them.
func (c *conns) retire() {
	c.mu.Lock()
	c.retired = true
	last := c.users == 0
	c.mu.Unlock()
	if last {
		c.close()
	}
}

func (c *conns) close() {
	c.h2.CloseIdleConnections()
	// Closing the HTTP/3 transport also closes its UDP socket.
	_ = c.h3.Close()
}

// protoSwitch is the http.RoundTripper that picks HTTP/2 or HTTP/3 per request, following
// Config.Transport and, for "auto", what each origin advertised.
type protoSwitch struct {
	mode string
	cs   *conns
	alt  *altSvc
	log  *zap.Logger
}

func (p *protoSwitch) RoundTrip(req *http.Request) (*http.Response, error) {
	switch p.mode {
	case TransportH2:
		return p.cs.h2.RoundTrip(req)
	case TransportH3:
		return p.cs.h3.RoundTrip(req)
	}
	if authority, ok := p.alt.h3For(req.URL); ok {
		// Dial the advertised authority but keep the origin as :authority (set explicitly:
		// requests made by a redirect carry no Host) and as TLS server name (quic-go takes
		// the SNI from the URL's host name, the origin's, since parseAltSvc only accepts
		// alternatives on the origin's host).
		alt := req.Clone(req.Context())
		alt.URL.Host = authority
		alt.Host = req.URL.Host
		resp, err := p.cs.h3.RoundTrip(alt)
		if err == nil {
			resp.Request = req
			p.alt.learn(req.URL, resp.Header.Values("Alt-Svc"))
			return resp, nil
		}
		if req.Context().Err() != nil {
			return nil, err // our own deadline or the caller: no protocol's fault
		}
		// Any HTTP/3 failure falls back, certificate refusals included: HTTP/2 verifies the
		// same way, so falling back never accepts what HTTP/3 refused.
		p.alt.markBroken(req.URL)
		p.log.Warn("upstream HTTP/3 failed; falling back to HTTP/2 for this origin",
			zap.String("origin", originKey(req.URL)), zap.String("h3", authority),
			zap.Duration("for", h3BrokenFor), zap.Error(err))
	}
	resp, err := p.cs.h2.RoundTrip(req)
	if err == nil {
		p.alt.learn(req.URL, resp.Header.Values("Alt-Svc"))
	}
	return resp, err
}

// protoOf names the protocol a response came over.
func protoOf(resp *http.Response) string {
	switch resp.ProtoMajor {
	case 3:
		return ProtoH3
	case 2:
		return ProtoH2
	default:
		return ProtoHTTP11
	}
}
