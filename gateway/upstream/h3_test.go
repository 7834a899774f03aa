package upstream

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// blackHole is a UDP endpoint that swallows datagrams and counts them: an HTTP/3 server
// that is down behind a firewall dropping packets, the slow way for HTTP/3 to fail.
func blackHole(t *testing.T, addr string) (port string, got *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-done
	})
	_, port, _ = net.SplitHostPort(pc.LocalAddr().String())
	return port, got
}

func portOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestAutoPrefersH3WhenAdvertised(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	fw := content(80_000)
	over3 := &vendor{content: fw, etag: `"fw1"`}
	s3 := startH3(t, cert, over3)
	// The HTTP/3 endpoint is on another port than HTTP/2, so reaching it proves the client
	// followed Alt-Svc rather than guessing the same port.
	over2 := &vendor{content: fw, etag: `"fw1"`, altSvc: fmt.Sprintf(`h3=":%s"; ma=60, h2=":443"`, portOf(t, s3.URL))}
	s2 := startH2(t, cert, over2)
	c := newTestClient(t, testConfig(ca, TransportAuto))
	ctx := ctxT(t)

	var protos []string
	for range 3 {
		doc, err := c.FetchDoc(ctx, s2.URL+"/m", "", 100_000)
		if err != nil {
			t.Fatal(err)
		}
		protos = append(protos, doc.Proto)
	}
	var buf bytes.Buffer
	proto, err := c.Download(ctx, s2.URL+"/fw.bin", &buf, 0, int64(len(fw)))
	if err != nil || !bytes.Equal(buf.Bytes(), fw) {
		t.Fatalf("download over auto: %v", err)
	}
	protos = append(protos, proto)
	if got := strings.Join(protos, " "); got != "h2 h3 h3 h3" {
		t.Fatalf("protocols %q, want h2 until Alt-Svc is seen, then h3", got)
	}
	if r3 := over3.requests(); len(r3) != 3 || r3[0].host != strings.TrimPrefix(s2.URL, "https://") {
		t.Fatalf("HTTP/3 requests must name the origin as :authority: %s", describe(r3))
	}
	if n := len(over2.requests()); n != 1 {
		t.Fatalf("%d HTTP/2 requests, want 1", n)
	}
}

func TestAutoFallsBackToH2WhenH3Down(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	port, datagrams := blackHole(t, "127.0.0.1:0")
	over2 := &vendor{content: []byte("doc"), altSvc: fmt.Sprintf(`h3=":%s"`, port)}
	s2 := startH2(t, cert, over2)
	cfg := testConfig(ca, TransportAuto)
	cfg.HandshakeTimeout = 300 * time.Millisecond
	clock := cfg.Clock.(*fakeClock)
	c := newTestClient(t, cfg)
	ctx := ctxT(t)

	fetch := func(step string) {
		t.Helper()
		doc, err := c.FetchDoc(ctx, s2.URL, "", 0)
		if err != nil || doc.Proto != ProtoH2 || string(doc.Body) != "doc" {
			t.Fatalf("%s: %+v, %v", step, doc, err)
		}
	}
	fetch("first fetch, learns Alt-Svc")
	if datagrams.Load() != 0 {
		t.Fatal("tried HTTP/3 before it was advertised")
	}
	fetch("h3 advertised but down")
	tried := datagrams.Load()
	if tried == 0 {
		t.Fatal("never tried the advertised HTTP/3 endpoint")
	}
	fetch("h3 known broken")
	if datagrams.Load() != tried {
		t.Fatalf("tried HTTP/3 again at once (%d more datagrams)", datagrams.Load()-tried)
	}
	clock.advance(h3BrokenFor + time.Second)
	fetch("after the broken period")
	if datagrams.Load() == tried {
		t.Fatal("did not try HTTP/3 again after the broken period")
	}
	if n := len(over2.requests()); n != 4 {
		t.Fatalf("%d HTTP/2 requests, want 4", n)
	}
}

func TestAutoForgetsExpiredOrClearedAltSvc(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	over3 := &vendor{content: []byte("doc")}
	s3 := startH3(t, cert, over3)
	over2 := &vendor{content: []byte("doc"), altSvc: fmt.Sprintf(`h3=":%s"; ma=60`, portOf(t, s3.URL))}
	s2 := startH2(t, cert, over2)
	cfg := testConfig(ca, TransportAuto)
	clock := cfg.Clock.(*fakeClock)
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	proto := func() string {
		t.Helper()
		doc, err := c.FetchDoc(ctx, s2.URL, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return doc.Proto
	}
	var got []string
	got = append(got, proto(), proto())
	clock.advance(61 * time.Second) // past ma=60
	got = append(got, proto(), proto())
	over3.setAltSvc("clear") // the HTTP/3 answer withdraws the alternative
	got = append(got, proto(), proto())
	if s := strings.Join(got, " "); s != "h2 h3 h2 h3 h3 h2" {
		t.Fatalf("protocols %q, want h2 h3 h2 h3 h3 h2", s)
	}
}

func TestH3AloneNeverFallsBack(t *testing.T) {
	ca := newCA(t, "vendor-ca")
	cert := ca.leaf(t, leafOpts{})
	over2 := &vendor{content: []byte("doc")}
	s2 := startH2(t, cert, over2)
	// UDP on the HTTP/2 server's port: dropped (black hole) or refused (nothing there).
	port := portOf(t, s2.URL)
	_, datagrams := blackHole(t, "127.0.0.1:"+port)
	cfg := testConfig(ca, TransportH3)
	cfg.HandshakeTimeout = 300 * time.Millisecond
	cfg.Retries = 1
	c := newTestClient(t, cfg)
	start := time.Now()
	doc, err := c.FetchDoc(ctxT(t), s2.URL, "", 0)
	if err == nil {
		t.Fatalf("fetched %+v with HTTP/3 down", doc)
	}
	mustErrIs(t, err, ErrTimeout)
	if n := len(over2.requests()); n != 0 {
		t.Fatalf("h3 mode fell back: %d HTTP/2 requests", n)
	}
	if datagrams.Load() == 0 {
		t.Fatal("never tried HTTP/3")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %s with HandshakeTimeout 300ms and 1 retry", el)
	}
}

func TestParseAltSvc(t *testing.T) {
	cases := []struct {
		values      []string
		h3          string
		maxAge      time.Duration
		clear, some bool
	}{
		{[]string{`h3=":443"; ma=2592000`}, "vendor.example:443", 2592000 * time.Second, false, true},
		{[]string{`h3=":8443"`}, "vendor.example:8443", 24 * time.Hour, false, true},
		{[]string{`h2=":443", h3-29=":443", h3=":4433"; ma=60; persist=1`}, "vendor.example:4433", time.Minute, false, true},
		{[]string{`h2=":443"`, `h3=":4433"; ma=60`}, "vendor.example:4433", time.Minute, false, true},
		{[]string{`h3="VENDOR.example:443"`}, "vendor.example:443", 24 * time.Hour, false, true},
		{[]string{`h3="evil.example:443"`}, "", 0, false, false},
		{[]string{`h3=":0"`}, "", 0, false, false},
		{[]string{`h3=":99999"`}, "", 0, false, false},
		{[]string{`h3=443`}, "", 0, false, false},
		{[]string{`h3=":443"; ma=0`}, "", 0, false, false},
		{[]string{`h3=":443"; ma=soon`}, "", 0, false, false},
		{[]string{`clear`}, "", 0, true, false},
		{[]string{`h3=":443"`, `clear`}, "", 0, true, false},
		{[]string{``}, "", 0, false, false},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.values, "|"), func(t *testing.T) {
			h3, ma, clear, found := parseAltSvc("vendor.example", tc.values)
			if h3 != tc.h3 || ma != tc.maxAge || clear != tc.clear || found != tc.some {
				t.Fatalf("got %q %s clear=%v found=%v", h3, ma, clear, found)
			}
		})
	}
}
