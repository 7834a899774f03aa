package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Client fetches documents and images from the vendor's HTTPS server. It is safe for
// concurrent use; Close it to release its connections and UDP socket.
type Client struct {
	cfg Config
	log *zap.Logger
	alt *altSvc

	mu     sync.Mutex
	cs     *conns // transports of the current Trust
	closed bool
}

// New returns a client for cfg, with cfg's defaults applied and its trust material loaded.
// log may be nil.
func New(cfg Config, log *zap.Logger) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	trust, err := LoadTrust(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{
		cfg: cfg,
		log: log.Named("upstream"),
		alt: newAltSvc(cfg.Clock),
		cs:  newConns(cfg, trust),
	}, nil
}

// SetTrust makes later connections use t. Attempts under way finish with the trust they
// started with; idle connections made under the old trust are closed, so nothing keeps
// talking on the strength of a CA or pin that was withdrawn.
func (c *Client) SetTrust(t *Trust) error {
	if t == nil {
		return fmt.Errorf("%w: SetTrust: nil Trust; build one with LoadTrust or NewTrust", ErrConfig)
	}
	next := newConns(c.cfg, t)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		next.close()
		return ErrClosed
	}
	old := c.cs
	c.cs = next
	c.mu.Unlock()
	old.retire()
	return nil
}

// Close closes idle connections at once and the rest as their attempts end; later calls
// fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	old := c.cs
	c.mu.Unlock()
	old.retire()
	return nil
}

func (c *Client) acquire() (*conns, error) {
	for {
		c.mu.Lock()
		cs, closed := c.cs, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if cs.acquire() {
			return cs, nil
		}
	}
}

// parseURL accepts absolute https URLs only: the whole point of this package is that
// nothing reaches the gateway unauthenticated.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		return nil, fmt.Errorf("%w: %s", ErrPlaintextURL, u.Redacted())
	default:
		return nil, fmt.Errorf("%w: %s", ErrBadURL, u.Redacted())
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %s has no host", ErrBadURL, u.Redacted())
	}
	return u, nil
}

// attemptFunc is one request of a call. It gets the HTTP client of the attempt and a watch
// to report body progress to; it returns the protocol the response came over, if any.
type attemptFunc func(ctx context.Context, hc *http.Client, w *watch) (proto string, err error)

// call runs attempt until it succeeds, fails for good, or retries run out, sleeping with
// backoff between attempts. It returns the protocol of the last response.
func (c *Client) call(ctx context.Context, op string, u *url.URL, attempt attemptFunc) (string, error) {
	var proto string
	for n := 0; ; n++ {
		p, err := c.attempt(ctx, attempt)
		if p != "" {
			proto = p
		}
		if err == nil {
			return proto, nil
		}
		err = fmt.Errorf("%s %s: %w", op, u.Redacted(), err)
		if ctx.Err() != nil || permanent(err) {
			return proto, err
		}
		if n >= c.cfg.retries() {
			if n > 0 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, n+1)
			}
			return proto, err
		}
		d := c.backoff(n)
		c.log.Warn("upstream attempt failed; retrying",
			zap.String("op", op), zap.String("url", u.Redacted()), zap.Int("attempt", n+1),
			zap.Int("of", c.cfg.retries()+1), zap.String("proto", p),
			zap.Duration("backoff", d), zap.Error(err))
		if serr := c.cfg.Clock.Sleep(ctx, d); serr != nil {
			return proto, fmt.Errorf("%w (while waiting to retry: %w)", err, serr)
		}
	}
}

// attempt runs one attempt under the Timeout and IdleTimeout limits.
func (c *Client) attempt(ctx context.Context, attempt attemptFunc) (string, error) {
	cs, err := c.acquire()
	if err != nil {
		return "", err
	}
	defer cs.release()

	actx, cancel := context.WithCancelCause(context.WithValue(ctx, certProbeKey{}, &certProbe{}))
	defer cancel(nil)
	actx, cancelT := context.WithTimeoutCause(actx, c.cfg.Timeout,
		fmt.Errorf("%w: attempt exceeded Timeout %s", ErrTimeout, c.cfg.Timeout))
	defer cancelT()
	// Until headers arrive the transports' own dial, handshake and header timeouts apply;
	// the watch is a backstop over all of them, then the idle limit between body reads.
	firstWait := c.cfg.DialTimeout + 2*c.cfg.HandshakeTimeout + c.cfg.IdleTimeout
	w := newWatch(firstWait, c.cfg.IdleTimeout, cancel)
	defer w.stop()

	hc := &http.Client{
		Transport:     &protoSwitch{mode: c.cfg.Transport, cs: cs, alt: c.alt, log: c.log},
		CheckRedirect: c.checkRedirect,
	}
	proto, err := attempt(actx, hc, w)
	if err != nil && ctx.Err() == nil {
		// Errors caused by our own limits surface as "context canceled" from deep inside a
		// transport; report the limit instead.
		if cause := context.Cause(actx); cause != nil && errors.Is(cause, ErrTimeout) {
			err = fmt.Errorf("%w (%v)", cause, err)
		}
	}
	return proto, err
}

func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if c.cfg.MaxRedirects < 0 {
		return fmt.Errorf("%w: redirect to %s refused: MaxRedirects is -1", ErrBadResponse, req.URL.Redacted())
	}
	if len(via) > c.cfg.MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects (MaxRedirects)", ErrBadResponse, c.cfg.MaxRedirects)
	}
	_, err := parseURL(req.URL.String())
	return err
}

// backoff is the wait before retry n+1: exponential, capped, with jitter in [d/2, d] so
// gateways that lost the vendor together do not come back in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffMax
	if n < 30 {
		if e := c.cfg.BackoffBase << n; e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// request builds a GET with the headers every fetch sends.
func request(ctx context.Context, u *url.URL) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	// Ask for the bytes as stored: limits, sizes and ranges count those.
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// classify turns the error of a request that got no response into one a caller can match.
func classify(ctx context.Context, u *url.URL, err error) error {
	if ce := certError(u.Hostname(), err); ce != nil {
		if errors.Is(err, ce) {
			return err
		}
		return ce
	}
	if p, ok := ctx.Value(certProbeKey{}).(*certProbe); ok {
		if alert := p.refusal(); alert != nil {
			return &CertError{Host: u.Hostname(), Reason: ErrClientCertRefused, Err: fmt.Errorf("%w (%w)", alert, err)}
		}
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// checkEncoding refuses bodies we would have to decode to count: Accept-Encoding asked for
// none.
func checkEncoding(resp *http.Response) error {
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return fmt.Errorf("%w: Content-Encoding %q although identity was asked for", ErrBadResponse, ce)
	}
	return nil
}

// watch cancels an attempt that makes no progress: first within firstWait, then within
// idle of the last body bytes.
type watch struct {
	idle    time.Duration
	timer   *time.Timer
	started atomic.Bool // a response arrived
}

func newWatch(firstWait, idle time.Duration, cancel context.CancelCauseFunc) *watch {
	w := &watch{idle: idle}
	w.timer = time.AfterFunc(firstWait, func() {
		if w.started.Load() {
			cancel(fmt.Errorf("%w: no progress for IdleTimeout %s", ErrTimeout, idle))
		} else {
			cancel(fmt.Errorf("%w: no response within %s (DialTimeout + 2*HandshakeTimeout + IdleTimeout)", ErrTimeout, firstWait))
		}
	})
	return w
}

// progress restarts the idle limit.
func (w *watch) progress() {
	w.started.Store(true)
	w.timer.Reset(w.idle)
}

func (w *watch) stop() { w.timer.Stop() }

// body wraps a response body so every read that brings bytes counts as progress.
func (w *watch) body(r io.Reader) io.Reader { return watchedReader{r: r, w: w} }

type watchedReader struct {
	r io.Reader
	w *watch
}

func (wr watchedReader) Read(p []byte) (int, error) {
	n, err := wr.r.Read(p)
	if n > 0 {
		wr.w.progress()
	}
	return n, err
}
