package catalog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/certs/localca"
	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/gateway/upstream"
)

const testClass = "esp8266-4m"

// vendorSite is a real HTTPS upstream on loopback serving a folder of `fotagate publish`
// output, with hooks to misbehave.
type vendorSite struct {
	t         *testing.T
	dir       string
	key       ed25519.PrivateKey
	pub       ed25519.PublicKey
	srv       *httptest.Server
	caFile    string
	imageHits atomic.Int32
	mu        sync.Mutex
	override  func(w http.ResponseWriter, r *http.Request) bool
}

func newVendorSite(t *testing.T) *vendorSite {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := &vendorSite{t: t, dir: t.TempDir(), key: key, pub: pub}
	ca, err := localca.New("vendor test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueFor(time.Hour, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	v.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WriteCertPEM(v.caFile); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(v.dir))
	v.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".bin") {
			v.imageHits.Add(1)
		}
		v.mu.Lock()
		o := v.override
		v.mu.Unlock()
		if o != nil && o(w, r) {
			return
		}
		files.ServeHTTP(w, r)
	}))
	v.srv.EnableHTTP2 = true
	v.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	v.srv.StartTLS()
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendorSite) publish(seq uint32, image []byte, expires time.Time) *manifest.Release {
	v.t.Helper()
	img := filepath.Join(v.t.TempDir(), "fw.bin")
	if err := os.WriteFile(img, image, 0o644); err != nil {
		v.t.Fatal(err)
	}
	rel, err := manifest.PublishDir(v.dir, img, manifest.PublishOptions{Class: testClass, Version: "1.0", Seq: seq, Expires: expires}, v.key)
	if err != nil {
		v.t.Fatal(err)
	}
	return rel
}

func (v *vendorSite) setOverride(f func(w http.ResponseWriter, r *http.Request) bool) {
	v.mu.Lock()
	v.override = f
	v.mu.Unlock()
}

func (v *vendorSite) manifestURL() string { return v.srv.URL + "/" + testClass + "/manifest.json" }

type refusals struct {
	mu sync.Mutex
	r  []Refusal
}

func (r *refusals) add(x Refusal) { r.mu.Lock(); r.r = append(r.r, x); r.mu.Unlock() }
func (r *refusals) reasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, x := range r.r {
		out = append(out, x.Reason)
	}
	return out
}

type env struct {
	cat   *Catalog
	cache *cache.Cache
	refs  *refusals
	state string
	cdir  string
}

func newCatalog(t *testing.T, v *vendorSite, stateDir string) *env {
	t.Helper()
	up, err := upstream.New(upstream.Config{CABundle: v.caFile, Retries: 1, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, Transport: upstream.TransportH2}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	cdir := filepath.Join(stateDir, "cache")
	c, err := cache.Open(cdir, 64<<20, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cache: c, refs: &refusals{}, state: filepath.Join(stateDir, "catalog.json"), cdir: cdir}
	e.cat, err = New(Config{
		Classes:   []Class{{Name: testClass, ManifestURL: v.manifestURL()}},
		Fetcher:   up,
		Cache:     c,
		Verifier:  &manifest.Verifier{Keys: []ed25519.PublicKey{v.pub}},
		StateFile: e.state, Log: zaptest.NewLogger(t), OnRefusal: e.refs.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func readImage(t *testing.T, img *server.Image) []byte {
	t.Helper()
	r, err := img.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := make([]byte, img.Size)
	if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b
}

func firmware(n int, b byte) []byte { return bytes.Repeat([]byte{b, b ^ 0x5a, 3}, n)[:n] }

func TestPollVerifiesCachesAndServesTheRelease(t *testing.T) {
	v := newVendorSite(t)
	fw := firmware(200_000, 1)
	v.publish(7, fw, time.Now().Add(time.Hour))
	e := newCatalog(t, v, t.TempDir())
	if _, err := e.cat.Latest(testClass, 1); !errors.Is(err, server.ErrRetry) {
		t.Fatalf("before the first poll: %v, want ErrRetry", err)
	}
	if err := e.cat.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	img, err := e.cat.Latest(testClass, 1)
	if err != nil || img == nil || img.Seq != 7 || img.Signature == nil {
		t.Fatalf("latest: %+v %v", img, err)
	}
	if !bytes.Equal(readImage(t, img), fw) {
		t.Fatal("served bytes differ from the published image")
	}
	if up, _ := e.cat.Latest(testClass, 7); up != nil {
		t.Fatal("device already on 7 was offered 7")
	}
	if _, err := e.cat.Latest("other", 1); !errors.Is(err, ErrUnknownClass) {
		t.Fatalf("unknown class: %v", err)
	}
	// A second poll is answered "not modified" (ETag) and fetches no image.
	hits := v.imageHits.Load()
	if err := e.cat.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v.imageHits.Load() != hits {
		t.Fatal("image fetched again although nothing changed")
	}
}

func TestServesFromCacheWhileUpstreamIsDownAndAfterRestart(t *testing.T) {
	v := newVendorSite(t)
	fw := firmware(50_000, 2)
	v.publish(3, fw, time.Now().Add(time.Hour))
	dir := t.TempDir()
	e := newCatalog(t, v, dir)
	if err := e.cat.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	v.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	if err := e.cat.Poll(context.Background()); err == nil {
		t.Fatal("poll of a down upstream succeeded")
	}
	if img, err := e.cat.Latest(testClass, 1); err != nil || img == nil || !bytes.Equal(readImage(t, img), fw) {
		t.Fatalf("not served while upstream down: %v", err)
	}
	// Restart: a new catalog over the same state and cache, upstream still down.
	e2 := newCatalog(t, v, dir)
	if img, err := e2.cat.Latest(testClass, 1); err != nil || img == nil || !bytes.Equal(readImage(t, img), fw) {
		t.Fatalf("not served after restart: %+v %v", img, err)
	}
}

func TestRefusedReleasesAreNeverCachedOrServed(t *testing.T) {
	fw := firmware(30_000, 3)
	cases := []struct {
		name   string
		setup  func(v *vendorSite)
		reason string
	}{
		{"tampered manifest", func(v *vendorSite) {
			rel := v.publish(5, fw, time.Now().Add(time.Hour))
			b, _ := os.ReadFile(rel.DocPath)
			os.WriteFile(rel.DocPath, bytes.Replace(b, []byte(`"1.0"`), []byte(`"1.1"`), 1), 0o644)
		}, "manifest does not verify"},
		{"unsigned manifest", func(v *vendorSite) {
			rel := v.publish(5, fw, time.Now().Add(time.Hour))
			os.Remove(rel.SigPath)
		}, "manifest does not verify"},
		{"signed by another vendor", func(v *vendorSite) {
			_, v.key, _ = ed25519.GenerateKey(rand.Reader)
			v.publish(5, fw, time.Now().Add(time.Hour))
		}, "manifest does not verify"},
		{"expired manifest", func(v *vendorSite) {
			v.publish(5, fw, time.Now().Add(time.Second))
			time.Sleep(1100 * time.Millisecond)
		}, "manifest does not verify"},
		{"image bytes differ", func(v *vendorSite) {
			rel := v.publish(5, fw, time.Now().Add(time.Hour))
			bad := append([]byte(nil), fw...)
			bad[100] ^= 1
			os.WriteFile(rel.ImagePath, bad, 0o644)
		}, "image does not match its manifest"},
		{"endless image", func(v *vendorSite) {
			v.publish(5, fw, time.Now().Add(time.Hour))
			v.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, ".bin") {
					return false
				}
				buf := make([]byte, 32<<10)
				for i := 0; i < 64; i++ { // bounded: 2 MiB, far past the 30 kB promised
					if _, err := w.Write(buf); err != nil {
						return true
					}
				}
				return true
			})
		}, "image download failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVendorSite(t)
			c.setup(v)
			e := newCatalog(t, v, t.TempDir())
			if err := e.cat.Poll(context.Background()); err == nil {
				t.Fatal("poll accepted the release")
			}
			if img, err := e.cat.Latest(testClass, 1); img != nil || err != nil {
				t.Fatalf("served after refusal: %+v %v", img, err)
			}
			if len(e.cache.List()) != 0 {
				t.Fatalf("cache holds %d images after a refusal", len(e.cache.List()))
			}
			got := e.refs.reasons()
			if len(got) == 0 || got[len(got)-1] != c.reason {
				t.Fatalf("refusal reasons %v, want %q", got, c.reason)
			}
		})
	}
}

func TestRollbackAfterAcceptedReleaseIsRefused(t *testing.T) {
	v := newVendorSite(t)
	v.publish(9, firmware(10_000, 4), time.Now().Add(time.Hour))
	e := newCatalog(t, v, t.TempDir())
	if err := e.cat.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The vendor host now serves an older, validly signed release (a freeze/rollback attack).
	old := newVendorSite(t)
	old.key, old.pub = v.key, v.pub
	rel := old.publish(8, firmware(10_000, 5), time.Now().Add(time.Hour))
	doc, _ := os.ReadFile(rel.DocPath)
	sig, _ := os.ReadFile(rel.SigPath)
	img, _ := os.ReadFile(rel.ImagePath)
	v.setOverride(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, ".sig"):
			w.Write(sig)
		case strings.HasSuffix(r.URL.Path, ".json"):
			w.Write(doc)
		default:
			w.Write(img)
		}
		return true
	})
	if err := e.cat.Poll(context.Background()); !errors.Is(err, manifest.ErrRollback) {
		t.Fatalf("rollback poll: %v", err)
	}
	if got, _ := e.cat.Latest(testClass, 1); got == nil || got.Seq != 9 {
		t.Fatalf("rollback replaced the release: %+v", got)
	}
}

func TestUntrustedUpstreamCertificateIsRefused(t *testing.T) {
	v := newVendorSite(t)
	v.publish(2, firmware(1000, 6), time.Now().Add(time.Hour))
	other := newVendorSite(t) // another CA: its bundle does not trust v's certificate
	v.caFile = other.caFile
	e := newCatalog(t, v, t.TempDir())
	err := e.cat.Poll(context.Background())
	if !errors.Is(err, upstream.ErrUnknownAuthority) {
		t.Fatalf("untrusted upstream: %v", err)
	}
	if img, _ := e.cat.Latest(testClass, 1); img != nil {
		t.Fatal("served from an untrusted upstream")
	}
}
