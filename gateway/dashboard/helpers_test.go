package dashboard

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/gateway/admin"
	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/catalog"
	"github.com/fotagate/fotagate/gateway/server"
)

const testToken = "correct-horse-battery-staple-0123456789"

// testSources shows a fleet and a fixed upstream and cache.
func testSources(f Fleet) Sources {
	digest := [32]byte{0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67}
	polled := time.Now()
	return Sources{
		Gateway: "gw-lobby",
		Fleet:   f,
		Catalog: func() []catalog.Status {
			return []catalog.Status{{Class: "esp8266-4m", Seq: 7, Version: "2.4.1", Size: 300 << 10,
				SHA256: "abcdef0123456700000000000000000000000000000000000000000000000000", LastPoll: polled}}
		},
		Cache: func() []cache.Info { return []cache.Info{{Digest: digest, Size: 300 << 10, Readers: 1}} },
		CacheStats: func() cache.Stats {
			return cache.Stats{Entries: 1, Bytes: 300 << 10, CapBytes: 64 << 20, Hits: 9, Misses: 1}
		},
		Upstream: func() string { return "updates.vendor.example over HTTP/3" },
	}
}

// testConfig is defaultConfig with times short enough for tests.
func testConfig() config {
	c := defaultConfig()
	c.flushEvery = 20 * time.Millisecond
	c.heartbeat = time.Second
	return c
}

type dash struct {
	*handler
	fleet *admin.Fleet
	srv   *httptest.Server
}

// newDash serves a dashboard over a real Fleet on a loopback test server.
func newDash(t *testing.T, auth admin.Authenticator, cfg config) *dash {
	t.Helper()
	f := admin.NewFleet(admin.FleetConfig{}, nil)
	h := newHandler(testSources(f), auth, zaptest.NewLogger(t), cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &dash{handler: h, fleet: f, srv: srv}
}

// do sends a request with the given headers and returns the response with its body read.
func (d *dash) do(t *testing.T, method, path string, hdr http.Header, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// login posts the token to the form and returns the session cookie it got, or nil.
func (d *dash) login(t *testing.T, token string) (*http.Response, *http.Cookie) {
	t.Helper()
	form := url.Values{"token": {token}}.Encode()
	resp, _ := d.do(t, http.MethodPost, Prefix+"login",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, strings.NewReader(form))
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			return resp, c
		}
	}
	return resp, nil
}

func cookieHeader(c *http.Cookie) http.Header {
	return http.Header{"Cookie": {c.Name + "=" + c.Value}}
}

func bearerHeader(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// sse reads server-sent events from a live feed.
type sse struct {
	resp  *http.Response
	r     *bufio.Reader
	stop  context.CancelFunc
	lines chan string
	once  sync.Once
}

type sseEvent struct {
	Name, ID, Data string
	Comment        string
}

// openFeed opens the live feed with hdr and fails the test unless it is a 200 stream.
func (d *dash) openFeed(t *testing.T, query string, hdr http.Header) *sse {
	t.Helper()
	s, resp := d.tryFeed(t, query, hdr)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("feed: %s", resp.Status)
	}
	return s
}

// tryFeed opens the live feed; the caller checks the status.
func (d *dash) tryFeed(t *testing.T, query string, hdr http.Header) (*sse, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.URL+Prefix+"events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := d.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sse{resp: resp, r: bufio.NewReader(resp.Body), stop: cancel, lines: make(chan string, 64)}
	go func() {
		defer close(s.lines)
		for {
			l, err := s.r.ReadString('\n')
			if err != nil {
				return
			}
			s.lines <- strings.TrimSuffix(l, "\n")
		}
	}()
	t.Cleanup(s.close)
	return s, resp
}

func (s *sse) close() {
	s.once.Do(func() {
		s.stop()
		s.resp.Body.Close()
	})
}

// next returns the next event or comment, failing t after limit.
func (s *sse) next(t *testing.T, limit time.Duration) sseEvent {
	t.Helper()
	var ev sseEvent
	deadline := time.After(limit)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatal("feed ended")
			}
			switch {
			case l == "":
				if ev != (sseEvent{}) {
					return ev
				}
			case strings.HasPrefix(l, ":"):
				ev.Comment = strings.TrimSpace(l[1:])
			case strings.HasPrefix(l, "event: "):
				ev.Name = l[len("event: "):]
			case strings.HasPrefix(l, "id: "):
				ev.ID = l[len("id: "):]
			case strings.HasPrefix(l, "data: "):
				ev.Data += l[len("data: "):]
			}
		case <-deadline:
			t.Fatalf("no event within %v", limit)
		}
	}
}

// await returns the next event named name, skipping others, failing t after limit.
func (s *sse) await(t *testing.T, name string, limit time.Duration) sseEvent {
	t.Helper()
	end := time.Now().Add(limit)
	for {
		left := time.Until(end)
		if left <= 0 {
			t.Fatalf("no %q event within %v", name, limit)
		}
		if ev := s.next(t, left); ev.Name == name {
			return ev
		}
	}
}

// Events as gateway/server records them.
func accepted(id string, size uint32) server.Event {
	return server.Event{Kind: server.EventAccepted, DeviceID: id, Remote: "192.0.2.10:4000", Class: "esp8266-4m", Running: 6, Seq: 7, Size: size}
}

func progressed(id string, size, off uint32) server.Event {
	return server.Event{Kind: server.EventProgress, DeviceID: id, Remote: "192.0.2.10:4000", Class: "esp8266-4m", Seq: 7, Size: size, Offset: off}
}

func handshakeFailed(claimed, remote, reason string) server.Event {
	return server.Event{Kind: server.EventHandshakeFailed, DeviceID: claimed, Remote: remote, Reason: reason}
}

// since is the query of a page that shows the fleet as of change seq.
func (d *dash) since(seq uint64) string { return "?since=" + d.eventID(seq) }
