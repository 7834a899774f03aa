package peers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"time"
)

// HTTPS is a GET over TLS 1.3 with TLS_CHACHA20_POLY1305_SHA256, the AEAD fotagate uses.
//
// Go does not let a server or client configure TLS 1.3 suites (tls.Config.CipherSuites
// applies to TLS 1.2 only). A Go client without AES hardware lists ChaCha20-Poly1305 first,
// and since Go 1.16 a Go server follows a client that prefers it (crypto/tls aesgcmPreferred;
// golang/go#41181). The device process therefore runs with GODEBUG=cpu.aes=off, which clears
// the AES feature bit as an ESP8266 lacks it; the server is stock and refuses the request if
// any other suite was negotiated.
//
// The server is stock net/http over crypto/tls with one self-signed ECDSA P-256 certificate
// (the device's only root) and no session tickets (the device would not keep them). With
// RecordPerChunk false it answers with http.ServeContent, so Go writes full 16 KiB records and
// the chunk is only the device's read size. With RecordPerChunk true it writes and flushes one
// chunk at a time, one TLS record per chunk: what a device with a chunk-sized record buffer
// would need (max_fragment_length or record_size_limit, which Go's server does not offer).
type HTTPS struct{ RecordPerChunk bool }

func (h HTTPS) Name() string {
	if h.RecordPerChunk {
		return "https-rec"
	}
	return "https"
}
func (HTTPS) Network() string { return "tcp" }
func (h HTTPS) About() string {
	if h.RecordPerChunk {
		return "HTTPS GET over TLS 1.3 (ChaCha20-Poly1305), the server flushing one TLS record per chunk; " +
			"chunk = record payload and the device's read size"
	}
	return "HTTPS GET over TLS 1.3 (ChaCha20-Poly1305) from a stock net/http server (http.ServeContent: " +
		"16 KiB records); chunk = the device's read size only"
}

// ClientEnv makes the Go device prefer ChaCha20-Poly1305, as a device without AES hardware does.
func (HTTPS) ClientEnv() []string { return []string{"GODEBUG=cpu.aes=off"} }

func (h HTTPS) Check(chunk int) error {
	if chunk < 1 || chunk > 16384 {
		return fmt.Errorf("%w: TLS records carry 1..16384 bytes", ErrChunkUnsupported)
	}
	return nil
}

// BearSSL figures on xtensa-lx106: the ESP8266 TLS stack. The two context sizes are measured by
// devicelib/c/tools/size-report.sh (device-size.txt; TestBearSSLContextsAreTheMeasuredOnes).
// BearSSL speaks TLS 1.2 only; no TLS 1.3 client fits an ESP8266 today, so these are the
// nearest real numbers.
const (
	bearSSLClientCtx  = 3408  // sizeof br_ssl_client_context
	bearSSLX509Ctx    = 3048  // sizeof br_x509_minimal_context
	bearSSLBidiBufs   = 33178 // BR_SSL_BUFSIZE_BIDI: full-size input and output record buffers
	bearSSLInOverhead = 325   // BR_SSL_BUFSIZE_INPUT - 16384
	bearSSLOutOverhd  = 85    // BR_SSL_BUFSIZE_OUTPUT - 16384
)

func (h HTTPS) DeviceRAM(chunk int) RAM {
	if !h.RecordPerChunk {
		return RAM{Bytes: bearSSLBidiBufs + bearSSLClientCtx + bearSSLX509Ctx,
			How: "BearSSL full bidi record buffers 33,178 + br_ssl_client_context 3,408 + br_x509_minimal_context 3,048 (16 KiB records)"}
	}
	how := "BearSSL buffers for chunk-sized records (chunk+325 in, chunk+85 out) + contexts 3,408 + 3,048; needs max_fragment_length"
	switch chunk {
	case 512, 1024, 2048, 4096:
	default:
		if chunk < 512 {
			how = "as for 512 B but records below 512 B need record_size_limit (RFC 8449), which BearSSL and Go lack"
		} else {
			how += " (not a max_fragment_length value)"
		}
	}
	rec := max(chunk, 512) // below 512 B a device still needs 512-byte records: the smallest max_fragment_length
	return RAM{Bytes: rec + bearSSLInOverhead + rec + bearSSLOutOverhd + bearSSLClientCtx + bearSSLX509Ctx, How: how}
}

type httpsServer struct {
	srv  *http.Server
	ln   net.Listener
	cert string // DER, base64: Info
}

func (h HTTPS) Serve(addr string, img []byte, m *Meter) (Server, error) {
	cert, certB64, err := selfSigned()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fw", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256 {
			http.Error(w, "bench: TLS_CHACHA20_POLY1305_SHA256 was not negotiated", http.StatusMisdirectedRequest)
			return
		}
		m.Mark(r.RemoteAddr)
		w.Header().Set("Content-Type", "application/octet-stream")
		if !h.RecordPerChunk {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
			return
		}
		chunk, err := strconv.Atoi(r.URL.Query().Get("chunk"))
		if err != nil || h.Check(chunk) != nil {
			http.Error(w, "bad chunk", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		rc := http.NewResponseController(w)
		for off := 0; off < len(img); off += chunk {
			if _, err := w.Write(img[off:min(off+chunk, len(img))]); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(tls.NewListener(m.Listener(ln), cfg)) //nolint:errcheck // ends at Close
	return &httpsServer{srv: srv, ln: ln, cert: certB64}, nil
}

// selfSigned makes an ECDSA P-256 certificate, the smallest a web PKI server would send; a
// real chain adds an intermediate (about 1 KB more per handshake).
// selfSigned makes the server's certificate and returns it with its DER in base64, which
// the harness hands to the device as Server.Info.
func selfSigned() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fotabench"},
		DNSNames: []string{"fotabench"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, base64.StdEncoding.EncodeToString(der), nil
}

func (s *httpsServer) Addr() string { return s.ln.Addr().String() }
func (s *httpsServer) Info() string { return s.cert }
func (s *httpsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func (h HTTPS) Fetch(ctx context.Context, f FetchConfig) (Fetched, error) {
	der, err := base64.StdEncoding.DecodeString(f.Info)
	if err != nil {
		return Fetched{}, fmt.Errorf("https: server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Fetched{}, fmt.Errorf("https: server certificate: %w", err)
	}
	// The server's one self-signed certificate is the device's only root: verified as a
	// device with a provisioned certificate would, no chain beyond it.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "fotabench", RootCAs: roots,
			// X25519 alone, as a device would offer: Go's default adds an ML-KEM-768 share,
			// which costs 2.3 KB of handshake that no ESP8266 could compute.
			CurvePreferences: []tls.CurveID{tls.X25519}},
		DisableKeepAlives:  true,
		DisableCompression: true,
		TLSNextProto:       map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1, as a device speaks
	}
	defer tr.CloseIdleConnections()
	url := "https://" + f.Addr + "/fw"
	if h.RecordPerChunk {
		url += "?chunk=" + strconv.Itoa(f.Chunk)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Fetched{}, err
	}
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return Fetched{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return Fetched{}, fmt.Errorf("https: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	if resp.TLS.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256 {
		return Fetched{}, fmt.Errorf("https: negotiated %s", tls.CipherSuiteName(resp.TLS.CipherSuite))
	}
	var out Fetched
	img := newSink(f, int(resp.ContentLength))
	buf := make([]byte, f.Chunk)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && out.FirstByte == 0 {
			out.FirstByte = time.Since(start)
		}
		img.write(buf[:n])
		if err == io.EOF {
			out.Image = img.finish()
			out.Elapsed = time.Since(start)
			return out, nil
		}
		if err != nil {
			return Fetched{}, err
		}
	}
}
