package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFetchDocPollsWithETag(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	for _, pc := range overBoth {
		t.Run(pc.name, func(t *testing.T) {
			v := &vendor{content: []byte(`{"version":"1.2.3"}`), etag: `"m1"`}
			srv := pc.start(t, cert, v)
			c := newTestClient(t, testConfig(ca, pc.transport))
			ctx := ctxT(t)

			doc, err := c.FetchDoc(ctx, srv.URL+"/manifest.json", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(doc.Body) != string(v.content) || doc.ETag != `"m1"` || doc.NotModified || doc.Proto != pc.want {
				t.Fatalf("first poll: %+v", doc)
			}

			doc, err = c.FetchDoc(ctx, srv.URL+"/manifest.json", doc.ETag, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !doc.NotModified || doc.Body != nil || doc.ETag != `"m1"` || doc.Proto != pc.want {
				t.Fatalf("second poll, same ETag: %+v", doc)
			}

			doc, err = c.FetchDoc(ctx, srv.URL+"/manifest.json", `"m0"`, 0)
			if err != nil {
				t.Fatal(err)
			}
			if doc.NotModified || string(doc.Body) != string(v.content) {
				t.Fatalf("poll with a stale ETag: %+v", doc)
			}
			rs := v.requests()
			if len(rs) != 3 || rs[0].ifNM != "" || rs[1].ifNM != `"m1"` || rs[2].ifNM != `"m0"` {
				t.Fatalf("If-None-Match sent: %s", describe(rs))
			}
		})
	}
}

func TestFetchDocRefusesMoreThanLimit(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	cases := []struct {
		name  string
		limit int64
		h     http.HandlerFunc
	}{
		{"endless body", 1024, endless},
		{"declared length", 1024, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1025")
			_, _ = w.Write(bytes.Repeat([]byte("y"), 1025))
		}},
		{"undeclared one byte over", 1024, func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(bytes.Repeat([]byte("y"), 1000))
			w.(http.Flusher).Flush()
			_, _ = w.Write(bytes.Repeat([]byte("y"), 25))
		}},
		{"default 64 KiB limit", 0, endless},
	}
	for _, pc := range overBoth {
		for _, tc := range cases {
			t.Run(pc.name+"/"+tc.name, func(t *testing.T) {
				srv := pc.start(t, cert, tc.h)
				c := newTestClient(t, testConfig(ca, pc.transport))
				start := time.Now()
				_, err := c.FetchDoc(ctxT(t), srv.URL+"/m", "", tc.limit)
				mustErrIs(t, err, ErrTooLarge)
				if time.Since(start) > 5*time.Second {
					t.Fatalf("took %s to notice", time.Since(start))
				}
			})
		}
	}
}

func TestFetchDocAcceptsExactlyLimit(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	v := &vendor{content: content(1024)}
	srv := startH2(t, ca.leaf(t, leafOpts{}), v)
	c := newTestClient(t, testConfig(ca, TransportH2))
	doc, err := c.FetchDoc(ctxT(t), srv.URL, "", 1024)
	if err != nil || len(doc.Body) != 1024 {
		t.Fatalf("doc of exactly the limit: %d bytes, %v", len(doc.Body), err)
	}
}

func TestRetriesAreBoundedAndBackOff(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	status := func(code int, until int) func(int, http.ResponseWriter, *http.Request) bool {
		return func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if until < 0 || n < until {
				w.WriteHeader(code)
				return true
			}
			return false
		}
	}
	cases := []struct {
		name     string
		retries  int
		handle   func(int, http.ResponseWriter, *http.Request) bool
		wantReqs int
		wantCode int // 0: success
	}{
		{"503 forever, 2 retries", 2, status(503, -1), 3, 503},
		{"503 forever, no retries", -1, status(503, -1), 1, 503},
		{"503 then success", 3, status(503, 1), 2, 0},
		{"429 then success", 3, status(429, 1), 2, 0},
		{"404 is final", 3, status(404, -1), 1, 404},
		{"403 is final", 3, status(403, -1), 1, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := &vendor{content: []byte("doc"), handle: tc.handle}
			srv := startH2(t, cert, v)
			cfg := testConfig(ca, TransportH2)
			cfg.Retries = tc.retries
			cfg.BackoffBase, cfg.BackoffMax = 100*time.Millisecond, 300*time.Millisecond
			clock := cfg.Clock.(*fakeClock)
			c := newTestClient(t, cfg)

			_, err := c.FetchDoc(ctxT(t), srv.URL, "", 0)
			if got := len(v.requests()); got != tc.wantReqs {
				t.Fatalf("%d requests, want %d (err %v)", got, tc.wantReqs, err)
			}
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != tc.wantCode || !errors.Is(err, ErrStatus) {
					t.Fatalf("error %v, want status %d", err, tc.wantCode)
				}
			}
			sleeps := clock.slept()
			if len(sleeps) != tc.wantReqs-1 {
				t.Fatalf("slept %v between %d requests", sleeps, tc.wantReqs)
			}
			for i, d := range sleeps {
				ceil := min(100*time.Millisecond<<i, 300*time.Millisecond)
				if d < ceil/2 || d > ceil {
					t.Fatalf("backoff %d is %s, want within [%s, %s]", i, d, ceil/2, ceil)
				}
			}
		})
	}
}

func TestStalledUpstreamIsCut(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	for _, pc := range overBoth {
		t.Run(pc.name+"/stall in body", func(t *testing.T) {
			v := &vendor{content: content(50_000), stallAfter: map[int]int{0: 1000}}
			srv := pc.start(t, cert, v)
			cfg := testConfig(ca, pc.transport)
			cfg.IdleTimeout = 300 * time.Millisecond
			cfg.Retries = -1
			c := newTestClient(t, cfg)
			start := time.Now()
			_, err := c.FetchDoc(ctxT(t), srv.URL, "", 100_000)
			mustErrIs(t, err, ErrTimeout)
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("stall noticed after %s, IdleTimeout is 300ms", el)
			}
			if !strings.Contains(err.Error(), "IdleTimeout") {
				t.Fatalf("message does not name the limit: %v", err)
			}
		})
		t.Run(pc.name+"/stall before headers", func(t *testing.T) {
			v := &vendor{content: []byte("doc"), handle: func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n == 0 {
					<-r.Context().Done()
					return true
				}
				return false
			}}
			srv := pc.start(t, cert, v)
			cfg := testConfig(ca, pc.transport)
			cfg.IdleTimeout = 300 * time.Millisecond
			cfg.HandshakeTimeout = 300 * time.Millisecond
			cfg.DialTimeout = 300 * time.Millisecond
			c := newTestClient(t, cfg)
			doc, err := c.FetchDoc(ctxT(t), srv.URL, "", 0)
			if err != nil || string(doc.Body) != "doc" {
				t.Fatalf("retry after a stall before headers: %q, %v", doc.Body, err)
			}
			if got := len(v.requests()); got != 2 {
				t.Fatalf("%d requests, want 2", got)
			}
		})
	}
}

func TestTimeoutBoundsAnAttempt(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	// A trickle: progress often enough for IdleTimeout, never done.
	trickle := func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}
	srv := startH2(t, ca.leaf(t, leafOpts{}), http.HandlerFunc(trickle))
	cfg := testConfig(ca, TransportH2)
	cfg.Timeout = 400 * time.Millisecond
	cfg.Retries = -1
	c := newTestClient(t, cfg)
	_, err := c.FetchDoc(ctxT(t), srv.URL, "", 1<<20)
	mustErrIs(t, err, ErrTimeout)
	if !strings.Contains(err.Error(), "Timeout 400ms") {
		t.Fatalf("message does not name the limit: %v", err)
	}
}

func TestCallerCancelIsNotRetried(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	v := &vendor{handle: func(n int, w http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return true
	}}
	srv := startH2(t, ca.leaf(t, leafOpts{}), v)
	c := newTestClient(t, testConfig(ca, TransportH2))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := c.FetchDoc(ctx, srv.URL, "", 0)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v after the caller's deadline", err)
	}
	if got := len(v.requests()); got != 1 {
		t.Fatalf("%d requests after the caller gave up, want 1", got)
	}
}
