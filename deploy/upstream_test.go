//go:build linux

package deploy_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/fotagate/fotagate/certs/localca"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/upstream/caddytest"
)

// The reference upstream (upstream/Caddyfile, started by upstream/serve.sh) serving real
// `fotagate publish` output through Debian's caddy, checked the way gateways use it: over
// HTTP/2 and HTTP/3, trusting only the test's CA (or caddy's internal one).

const class = "esp-relay"

// published is a publish folder with one release and files that must never be served.
type published struct {
	site   string
	rel    *manifest.Release
	vendor ed25519.PublicKey
	image  []byte
}

func publish(t *testing.T) *published {
	t.Helper()
	dir := t.TempDir()
	pub, priv, err := manifest.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	image := make([]byte, 300_000)
	if _, err := rand.Read(image); err != nil {
		t.Fatal(err)
	}
	imagePath := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(imagePath, image, 0o644); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(dir, "site")
	rel, err := manifest.PublishDir(site, imagePath, manifest.PublishOptions{
		Class: class, Version: "1.4.2", Seq: 42, Expires: time.Now().Add(24 * time.Hour),
	}, priv)
	if err != nil {
		t.Fatal(err)
	}
	// What a careless vendor leaves lying in the folder, and what publish leaves half-written.
	for name, text := range map[string]string{
		"vendor.key":                            "fotagate-vendor-key secret\n",
		class + "/vendor.key":                   "fotagate-vendor-key secret\n",
		class + "/notes.txt":                    "release notes\n",
		class + "/.manifest.json.tmp123":        "{half",
		class + "/." + rel.Manifest.ImageName(): "half an image",
	} {
		if err := os.WriteFile(filepath.Join(site, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &published{site: site, rel: rel, vendor: pub, image: image}
}

// startUpstream runs upstream/serve.sh SITE ADDRESS CERT... under caddytest (a free loopback
// port, caddy's home in the test's directory, killed with the test) and returns the base URL
// and the roots to trust once it answers; roots reads them from caddy's home, where caddy's
// own CA puts them for the internal certificate.
func startUpstream(t *testing.T, site string, tlsArgs []string, roots func(home string) *x509.CertPool) (string, *x509.CertPool) {
	t.Helper()
	base := func(port int) string { return "https://127.0.0.1:" + strconv.Itoa(port) }
	var pool *x509.CertPool
	port, _ := caddytest.Start(t, 20*time.Second, func(port int, _ string) *exec.Cmd {
		cmd := exec.Command("upstream/serve.sh", append([]string{site, base(port)}, tlsArgs...)...)
		cmd.Env = []string{"FOTA_BIND=127.0.0.1"}
		return cmd
	}, func(port int, home string) error {
		if pool = roots(home); pool == nil {
			return errors.New("no roots yet")
		}
		resp, err := h2Client(pool).Get(base(port) + "/" + class + "/" + manifest.DocName)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return base(port), pool
}

func h2Client(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
	}
}

func h3Client(t *testing.T, pool *x509.CertPool) *http.Client {
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

func TestReferenceUpstreamServesPublishOutput(t *testing.T) {
	p := publish(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (tlsArgs []string, roots func(home string) *x509.CertPool)
	}{
		{"certificate files", func(t *testing.T) ([]string, func(string) *x509.CertPool) {
			ca, err := localca.New("reference upstream test CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := ca.IssueFor(time.Hour, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cert, key := filepath.Join(dir, "upstream.crt"), filepath.Join(dir, "upstream.key")
			if err := localca.WritePEM(leaf, cert, key); err != nil {
				t.Fatal(err)
			}
			return []string{cert, key}, func(string) *x509.CertPool { return ca.Pool() }
		}},
		{"tls internal", func(t *testing.T) ([]string, func(string) *x509.CertPool) {
			// caddy makes its LAN CA on first start, where serve.sh says: gateways would get
			// this root as upstream.ca_bundle.
			return []string{"internal"}, func(home string) *x509.CertPool {
				b, err := os.ReadFile(filepath.Join(home, "data/caddy/pki/authorities/local/root.crt"))
				if err != nil {
					return nil
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(b) {
					return nil
				}
				return pool
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsArgs, roots := tc.setup(t)
			base, pool := startUpstream(t, p.site, tlsArgs, roots)
			checkUpstream(t, p, base, h2Client(pool), "HTTP/2.0")
			checkUpstream(t, p, base, h3Client(t, pool), "HTTP/3.0")
		})
	}
}

func get(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp, body
}

func wantHeaders(t *testing.T, what string, resp *http.Response, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %s %q, want %q", what, k, got, v)
		}
	}
}

func checkUpstream(t *testing.T, p *published, base string, c *http.Client, proto string) {
	t.Helper()
	docURL := base + "/" + class + "/" + manifest.DocName
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// The manifest and its signature: JSON, revalidated on every poll.
	resp, doc := get(t, c, docURL)
	if resp.StatusCode != http.StatusOK || resp.Proto != proto || !bytes.Equal(doc, read(p.rel.DocPath)) {
		t.Fatalf("%s: %s over %s, %d bytes; want 200 over %s with the published bytes", docURL, resp.Status, resp.Proto, len(doc), proto)
	}
	noCache := map[string]string{"Content-Type": "application/json", "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
	wantHeaders(t, proto+" manifest.json", resp, noCache)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Errorf("%s manifest.json has no ETag: every poll would download it again", proto)
	} else if again, _ := get(t, c, docURL, "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
		t.Errorf("%s manifest.json with its ETag: %s, want 304", proto, again.Status)
	}
	if proto == "HTTP/2.0" && !strings.Contains(resp.Header.Get("Alt-Svc"), "h3=") {
		t.Errorf("no HTTP/3 advertised (Alt-Svc %q): gateways on auto would stay on HTTP/2", resp.Header.Get("Alt-Svc"))
	}
	resp, sig := get(t, c, docURL+".sig")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(sig, read(p.rel.SigPath)) {
		t.Fatalf("manifest.json.sig: %s", resp.Status)
	}
	wantHeaders(t, proto+" manifest.json.sig", resp, noCache)

	// What was served verifies as the gateway verifies it, and names the image.
	m, err := (&manifest.Verifier{Keys: []ed25519.PublicKey{p.vendor}}).Verify(doc, sig, class)
	if err != nil {
		t.Fatalf("served manifest does not verify: %v", err)
	}
	docU, _ := url.Parse(docURL)
	imgU, err := m.ResolveURL(docU)
	if err != nil {
		t.Fatal(err)
	}

	// The image: content-addressed, so cacheable for ever; resumable with Range.
	resp, img := get(t, c, imgU.String())
	if resp.StatusCode != http.StatusOK || sha256.Sum256(img) != m.SHA256 {
		t.Fatalf("%s: %s, %d bytes; want 200 and the published image", imgU, resp.Status, len(img))
	}
	wantHeaders(t, proto+" image", resp, map[string]string{
		"Content-Type":           "application/octet-stream",
		"Cache-Control":          "public, max-age=31536000, immutable",
		"X-Content-Type-Options": "nosniff",
	})
	resp, rest := get(t, c, imgU.String(), "Range", "bytes=123456-")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(rest, p.image[123456:]) {
		t.Errorf("%s image from byte 123456: %s, %d bytes; want 206 and the rest", proto, resp.Status, len(rest))
	}

	// Nothing else in the folder is published.
	for _, path := range []string{
		"/vendor.key",
		"/" + class + "/vendor.key",
		"/" + class + "/notes.txt",
		"/" + class + "/",
		"/" + class + "/.manifest.json.tmp123",
		"/" + class + "/." + p.rel.Manifest.ImageName(),
		"/",
	} {
		if resp, body := get(t, c, base+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %s (%q), want 404", proto, path, resp.Status, truncate(body))
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%s...", b[:40])
	}
	return string(b)
}
