package demo

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/fotagate/fotagate/certs/localca"
)

// Upstream is a vendor firmware host on loopback: a folder of `fotagate publish` output
// served over HTTPS (HTTP/2) and HTTP/3 on the same port, advertised with Alt-Svc, under a
// certificate from a local CA. The demo and the end-to-end tests use it.
type Upstream struct {
	URL    string // https://127.0.0.1:port
	CA     *localca.CA
	h2     *http.Server
	h3     *http3.Server
	udp    net.PacketConn
	mu     sync.Mutex
	down   bool
	counts map[string]int // "h2 manifest.json" -> requests
}

// StartUpstream serves dir until Close.
func StartUpstream(dir string) (*Upstream, error) {
	ca, err := localca.New("fotagate demo vendor CA", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert, err := ca.IssueFor(24*time.Hour, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	u := &Upstream{CA: ca, counts: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	// TCP and UDP must share a port number for Alt-Svc; pick one that is free for both.
	var tcp net.Listener
	for try := 0; try < 20 && u.udp == nil; try++ {
		if tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if u.udp, err = net.ListenPacket("udp", tcp.Addr().String()); err != nil {
			tcp.Close()
			u.udp = nil
		}
	}
	if u.udp == nil {
		return nil, fmt.Errorf("demo upstream: no port free for both TCP and UDP: %w", err)
	}
	u.URL = "https://" + tcp.Addr().String()
	handler := func(proto string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u.mu.Lock()
			down := u.down
			u.counts[proto+" "+r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
			u.mu.Unlock()
			if down {
				http.Error(w, "vendor host is down", http.StatusServiceUnavailable)
				return
			}
			if proto == "h2" {
				u.h3.SetQUICHeaders(w.Header()) //nolint:errcheck // only fails without listeners
			}
			files.ServeHTTP(w, r)
		})
	}
	u.h3 = &http3.Server{Handler: handler("h3"), TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	u.h2 = &http.Server{Handler: handler("h2"), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second}
	go u.h3.Serve(u.udp)          //nolint:errcheck // ends with Close
	go u.h2.ServeTLS(tcp, "", "") //nolint:errcheck // ends with Close
	return u, nil
}

// SetDown makes every request fail with 503 (true) or serve again (false).
func (u *Upstream) SetDown(down bool) {
	u.mu.Lock()
	u.down = down
	u.mu.Unlock()
}

// Requests returns how many requests each protocol served for each file name.
func (u *Upstream) Requests() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]int, len(u.counts))
	for k, v := range u.counts {
		out[k] = v
	}
	return out
}

// Close stops both servers.
func (u *Upstream) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := errors.Join(u.h2.Shutdown(ctx), u.h3.Close())
	u.udp.Close()
	return err
}
