package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestDownloadResumesAfterCut(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	const size, cutAt = 300_000, 100_000
	fw := content(size)
	for _, pc := range overBoth {
		for _, offset := range []int64{0, 12_345} {
			t.Run(fmt.Sprintf("%s/from %d", pc.name, offset), func(t *testing.T) {
				// How much the writer held when the retry reached the server.
				var got countingBuffer
				var heldAtRetry atomic.Int64
				v := &vendor{content: fw, etag: `"fw1"`, cutAfter: map[int]int{0: cutAt},
					handle: func(n int, _ http.ResponseWriter, _ *http.Request) bool {
						if n == 1 {
							heldAtRetry.Store(got.n.Load())
						}
						return false
					}}
				srv := pc.start(t, cert, v)
				c := newTestClient(t, testConfig(ca, pc.transport))
				proto, err := c.Download(ctxT(t), srv.URL+"/fw.bin", &got, offset, size)
				if err != nil {
					t.Fatal(err)
				}
				if proto != pc.want {
					t.Fatalf("proto %q, want %q", proto, pc.want)
				}
				if !bytes.Equal(got.b.Bytes(), fw[offset:]) {
					t.Fatalf("wrote %d bytes, not bytes [%d, %d) of the resource", got.b.Len(), offset, size)
				}
				rs := v.requests()
				if len(rs) != 2 {
					t.Fatalf("requests: %s", describe(rs))
				}
				wantFirst := ""
				if offset > 0 {
					wantFirst = fmt.Sprintf("bytes=%d-", offset)
				}
				// Resumed exactly where the writer got to. (Over QUIC a reset stream may
				// drop data the client had not read yet, so that is not always cutAt.)
				held := heldAtRetry.Load()
				if held <= 0 || held > cutAt {
					t.Fatalf("writer held %d bytes at the retry; the server sent %d before the cut", held, cutAt)
				}
				wantSecond := fmt.Sprintf("bytes=%d-", offset+held)
				if rs[0].rng != wantFirst || rs[1].rng != wantSecond || rs[1].ifRange != `"fw1"` {
					t.Fatalf("want Range %q then %q with If-Range; requests: %s", wantFirst, wantSecond, describe(rs))
				}
			})
		}
	}
}

func TestDownloadRestartsCleanlyWhenRangeIgnored(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	const size = 200_000
	fw := content(size)
	type misbehave struct {
		etag        string
		etagAt      map[int]string
		cutAfter    map[int]int
		ignoreRange map[int]bool
	}
	cases := []struct {
		name    string
		offset  int64
		v       misbehave
		wantErr error
		wantLen int // at most this many bytes written when failing
	}{
		{"caller's partial, server sends all", 5_000,
			misbehave{etag: `"fw1"`, ignoreRange: map[int]bool{0: true}}, nil, 0},
		{"cut, then server sends all", 0,
			misbehave{etag: `"fw1"`, cutAfter: map[int]int{0: 60_000}, ignoreRange: map[int]bool{1: true}}, nil, 0},
		{"cut, then no ETag at all", 0,
			misbehave{cutAfter: map[int]int{0: 60_000}, ignoreRange: map[int]bool{1: true}}, nil, 0},
		{"cut, then a new version", 0,
			misbehave{etag: `"fw1"`, etagAt: map[int]string{1: `"fw2"`}, cutAfter: map[int]int{0: 60_000}}, ErrChanged, 60_000},
		{"cut, then whole body without ETag", 0,
			misbehave{etag: `"fw1"`, etagAt: map[int]string{1: ""}, cutAfter: map[int]int{0: 60_000}, ignoreRange: map[int]bool{1: true}}, ErrChanged, 60_000},
	}
	for _, pc := range overBoth {
		for _, tc := range cases {
			t.Run(pc.name+"/"+tc.name, func(t *testing.T) {
				v := &vendor{content: fw, etag: tc.v.etag, etagAt: tc.v.etagAt, cutAfter: tc.v.cutAfter, ignoreRange: tc.v.ignoreRange}
				srv := pc.start(t, cert, v)
				c := newTestClient(t, testConfig(ca, pc.transport))
				var got bytes.Buffer
				_, err := c.Download(ctxT(t), srv.URL, &got, tc.offset, size)
				if tc.wantErr != nil {
					mustErrIs(t, err, tc.wantErr)
					// Only what came before the cut: nothing of the new version.
					if got.Len() == 0 || got.Len() > tc.wantLen || !bytes.Equal(got.Bytes(), fw[:got.Len()]) {
						t.Fatalf("wrote %d bytes; want a prefix of the old version, at most %d", got.Len(), tc.wantLen)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), fw[tc.offset:]) {
					t.Fatalf("wrote %d bytes that are not bytes [%d, %d)", got.Len(), tc.offset, size)
				}
				if rs := v.requests(); rs[len(rs)-1].rng == "" {
					t.Fatalf("last request had no Range, so the server could not ignore it: %s", describe(rs))
				}
			})
		}
	}
}

func TestDownloadRefusesWrongSize(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	fw := content(2000)
	undeclared := func(n int) func(int, http.ResponseWriter, *http.Request) bool {
		return func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			// Two flushes: no Content-Length, the length shows only at the end.
			_, _ = w.Write(fw[:n/2])
			w.(http.Flusher).Flush()
			_, _ = w.Write(fw[n/2 : n])
			return true
		}
	}
	cases := []struct {
		name         string
		offset, size int64
		handle       func(int, http.ResponseWriter, *http.Request) bool
		wantErr      error
		wantReqs     int
	}{
		{"declared longer", 0, 1000, nil, ErrTooLarge, 1},
		{"Content-Range total longer", 500, 1000, nil, ErrTooLarge, 1},
		{"declared shorter", 0, 3000, nil, ErrSizeMismatch, 1},
		{"shorter than the offset: 416", 2500, 3000, nil, ErrSizeMismatch, 1},
		{"undeclared longer", 0, 1000, undeclared(1500), ErrTooLarge, 1},
		{"endless", 0, 10_000, func(_ int, w http.ResponseWriter, r *http.Request) bool {
			endless(w, r)
			return true
		}, ErrTooLarge, 1},
		{"undeclared shorter, every time", 0, 1000, undeclared(900), ErrTruncated, 2},
		{"206 for another range", 100, 2000, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.Header().Set("Content-Range", "bytes 0-1999/2000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(fw)
			return true
		}, ErrBadResponse, 1},
		{"compressed", 0, 2000, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(fw)
			return true
		}, ErrBadResponse, 1},
	}
	for _, pc := range overBoth {
		for _, tc := range cases {
			t.Run(pc.name+"/"+tc.name, func(t *testing.T) {
				v := &vendor{content: fw, etag: `"fw1"`, handle: tc.handle}
				srv := pc.start(t, cert, v)
				cfg := testConfig(ca, pc.transport)
				cfg.Retries = 1
				c := newTestClient(t, cfg)
				var got bytes.Buffer
				_, err := c.Download(ctxT(t), srv.URL, &got, tc.offset, tc.size)
				mustErrIs(t, err, tc.wantErr)
				if int64(got.Len()) > tc.size-tc.offset {
					t.Fatalf("wrote %d bytes, more than size-offset %d", got.Len(), tc.size-tc.offset)
				}
				if got.Len() > 0 && tc.handle == nil && !bytes.Equal(got.Bytes(), fw[tc.offset:tc.offset+int64(got.Len())]) {
					t.Fatal("wrote bytes that are not the resource's")
				}
				if rs := v.requests(); len(rs) != tc.wantReqs {
					t.Fatalf("%d requests, want %d: %s", len(rs), tc.wantReqs, describe(rs))
				}
			})
		}
	}
}

func TestDownloadResumesAfterStall(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	fw := content(120_000)
	v := &vendor{content: fw, etag: `"fw1"`, stallAfter: map[int]int{0: 50_000}}
	srv := startH2(t, ca.leaf(t, leafOpts{}), v)
	cfg := testConfig(ca, TransportH2)
	cfg.IdleTimeout = 300 * time.Millisecond
	c := newTestClient(t, cfg)
	var got bytes.Buffer
	if _, err := c.Download(ctxT(t), srv.URL, &got, 0, int64(len(fw))); err != nil {
		t.Fatal(err)
	}
	rs := v.requests()
	if !bytes.Equal(got.Bytes(), fw) || len(rs) != 2 || rs[1].rng != "bytes=50000-" {
		t.Fatalf("wrote %d bytes; requests %s", got.Len(), describe(rs))
	}
}

// countingBuffer is a bytes.Buffer whose length another goroutine may read.
type countingBuffer struct {
	b bytes.Buffer
	n atomic.Int64
}

func (c *countingBuffer) Write(p []byte) (int, error) {
	n, err := c.b.Write(p)
	c.n.Add(int64(n))
	return n, err
}

type failingWriter struct {
	n   int
	err error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

func TestDownloadWriterErrorIsNotRetried(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	v := &vendor{content: content(100_000), etag: `"fw1"`}
	srv := startH2(t, ca.leaf(t, leafOpts{}), v)
	c := newTestClient(t, testConfig(ca, TransportH2))
	diskFull := errors.New("disk full")
	_, err := c.Download(ctxT(t), srv.URL, &failingWriter{n: 1000, err: diskFull}, 0, 100_000)
	mustErrIs(t, err, diskFull)
	if got := len(v.requests()); got != 1 {
		t.Fatalf("%d requests after the writer failed, want 1", got)
	}
}

func TestDownloadArguments(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	v := &vendor{content: content(10)}
	srv := startH2(t, ca.leaf(t, leafOpts{}), v)
	c := newTestClient(t, testConfig(ca, TransportH2))
	var buf bytes.Buffer
	for _, tc := range []struct{ offset, size int64 }{{-1, 10}, {11, 10}, {0, 0}, {0, -5}} {
		t.Run(strconv.FormatInt(tc.offset, 10)+"/"+strconv.FormatInt(tc.size, 10), func(t *testing.T) {
			_, err := c.Download(ctxT(t), srv.URL, &buf, tc.offset, tc.size)
			mustErrIs(t, err, ErrArgument)
		})
	}
	_, err := c.Download(ctxT(t), srv.URL, nil, 0, 10)
	mustErrIs(t, err, ErrArgument)

	proto, err := c.Download(ctxT(t), srv.URL, &buf, 10, 10)
	if err != nil || proto != "" || buf.Len() != 0 || len(v.requests()) != 0 {
		t.Fatalf("complete partial: proto %q, err %v, %d requests", proto, err, len(v.requests()))
	}
}

func TestDownloadFollowsShortPartialResponses(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	const size, chunk, offset = 300_000, 50_000, 1_000
	fw := content(size)
	// Like some CDNs: an open-ended range gets at most chunk bytes.
	capped := func(_ int, w http.ResponseWriter, r *http.Request) bool {
		var start int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start); err != nil {
			return false
		}
		end := min(start+chunk, size) - 1
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
		w.Header().Set("Content-Length", strconv.Itoa(end-start+1))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(fw[start : end+1])
		return true
	}
	for _, pc := range overBoth {
		t.Run(pc.name, func(t *testing.T) {
			v := &vendor{content: fw, handle: capped}
			srv := pc.start(t, cert, v)
			cfg := testConfig(ca, pc.transport)
			cfg.Retries = -1 // each short answer is progress, not a failure
			c := newTestClient(t, cfg)
			var got bytes.Buffer
			if _, err := c.Download(ctxT(t), srv.URL, &got, offset, size); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), fw[offset:]) {
				t.Fatalf("wrote %d bytes that are not bytes [%d, %d)", got.Len(), offset, size)
			}
			if n, want := len(v.requests()), (size-offset+chunk-1)/chunk; n != want {
				t.Fatalf("%d requests, want %d", n, want)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		v                 string
		start, end, total int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 10-19/*", 10, 19, -1, true},
		{"bytes 10-19/15", 0, 0, 0, false},
		{"bytes 19-10/100", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"bytes -5-10/100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tc := range cases {
		start, end, total, err := parseContentRange(tc.v)
		if tc.ok != (err == nil) || (tc.ok && (start != tc.start || end != tc.end || total != tc.total)) {
			t.Errorf("%q: %d %d %d %v", tc.v, start, end, total, err)
		}
		if err != nil && !errors.Is(err, ErrBadResponse) {
			t.Errorf("%q: %v is not ErrBadResponse", tc.v, err)
		}
	}
}
