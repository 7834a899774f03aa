// Package catalog keeps, for each device class, the newest release the gateway may offer. It
// polls the class's signed manifest upstream (gateway/upstream), verifies it
// (gateway/manifest), fetches the image into the verified cache (gateway/cache) and only then
// makes it servable; the device server (gateway/server) asks it what a device should get.
//
// What it accepted survives restarts: the verified manifest documents are kept in a state file
// and re-verified at start, so the gateway serves from its cache while the upstream is down.
// The highest accepted sequence per class is a floor: an older manifest is a rollback and is
// refused, also after a restart.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/gateway/upstream"
)

// Fetcher is the upstream client.
type Fetcher interface {
	FetchDoc(ctx context.Context, rawURL, etag string, limit int64) (upstream.Doc, error)
	Download(ctx context.Context, rawURL string, w io.Writer, offset, size int64) (string, error)
}

// Observer is told about upstream fetches and cache lookups (gateway/admin's metrics).
type Observer interface {
	UpstreamFetch(kind, proto, result string)
	CacheLookup(hit bool)
}

// Class is a device class and the URL of its signed manifest.
type Class struct {
	Name        string
	ManifestURL string
}

// Refusal is an upstream release the catalog would not take, and why.
type Refusal struct {
	Time   time.Time
	Class  string
	Reason string
	Err    error
}

// Config wires a catalog.
type Config struct {
	Classes   []Class
	Fetcher   Fetcher
	Cache     *cache.Cache
	Verifier  *manifest.Verifier
	StateFile string // where accepted manifests are kept across restarts
	Log       *zap.Logger
	Observer  Observer         // may be nil
	OnRefusal func(Refusal)    // may be nil
	Now       func() time.Time // nil: time.Now
}

// Catalog is safe for concurrent use.
type Catalog struct {
	cfg     Config
	mu      sync.RWMutex
	classes map[string]*class
	pollMu  sync.Mutex // one poll at a time
}

type class struct {
	Class
	url      *url.URL
	etag     string
	current  *release // servable: verified and cached
	polled   bool     // at least one poll finished (even if it failed)
	lastErr  error
	lastPoll time.Time
}

type release struct {
	m        *manifest.Manifest
	doc, sig []byte
}

// ErrUnknownClass is returned for a class the gateway is not configured to serve.
var ErrUnknownClass = errors.New("device class not configured")

// New builds a catalog and restores what a previous run accepted (after re-verifying it).
func New(cfg Config) (*Catalog, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Catalog{cfg: cfg, classes: map[string]*class{}}
	for _, cl := range cfg.Classes {
		u, err := url.Parse(cl.ManifestURL)
		if err != nil || u.Scheme != "https" {
			return nil, fmt.Errorf("catalog: class %s: manifest URL %q must be https", cl.Name, cl.ManifestURL)
		}
		c.classes[cl.Name] = &class{Class: cl, url: u}
	}
	if err := c.restore(); err != nil {
		return nil, err
	}
	cfg.Cache.SetNeeded(c.needed)
	return c, nil
}

// needed tells the cache which images must never be evicted.
func (c *Catalog) needed(digest [32]byte) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, cl := range c.classes {
		if cl.current != nil && cl.current.m.SHA256 == digest {
			return true
		}
	}
	return false
}

type savedState struct {
	Classes map[string]savedRelease `json:"classes"`
}

type savedRelease struct {
	Doc []byte `json:"doc"` // base64 in JSON
	Sig []byte `json:"sig"`
}

func (c *Catalog) restore() error {
	b, err := os.ReadFile(c.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("catalog: state file %s is damaged (%v): move it away to start from the upstream again", c.cfg.StateFile, err)
	}
	for name, r := range st.Classes {
		cl := c.classes[name]
		if cl == nil {
			continue
		}
		m, err := c.cfg.Verifier.Verify(r.Doc, r.Sig, name)
		if err != nil {
			c.refuse(name, "restored manifest no longer verifies", err)
			continue
		}
		if !c.cfg.Cache.Has(m.SHA256) {
			c.cfg.Log.Warn("restored release has no cached image; it will be fetched again", zap.String("class", name), zap.Uint32("seq", m.Seq))
			continue
		}
		cl.current = &release{m: m, doc: r.Doc, sig: r.Sig}
		c.cfg.Log.Info("serving cached release", zap.String("class", name), zap.Uint32("seq", m.Seq), zap.String("version", m.Version))
	}
	return nil
}

// save writes the accepted releases atomically; called with c.mu held for reading at least.
func (c *Catalog) save() error {
	st := savedState{Classes: map[string]savedRelease{}}
	for name, cl := range c.classes {
		if cl.current != nil {
			st.Classes[name] = savedRelease{Doc: cl.current.doc, Sig: cl.current.sig}
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.cfg.StateFile), ".catalog-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.cfg.StateFile)
}

func (c *Catalog) refuse(class, reason string, err error) {
	c.cfg.Log.Warn("upstream release refused", zap.String("class", class), zap.String("reason", reason), zap.Error(err))
	if c.cfg.OnRefusal != nil {
		c.cfg.OnRefusal(Refusal{Time: c.cfg.Now(), Class: class, Reason: reason, Err: err})
	}
}

func (c *Catalog) observe(kind, proto string, err error) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.UpstreamFetch(kind, proto, fetchResult(err))
	}
}

// fetchResult classes an upstream error for metrics.
func fetchResult(err error) string {
	if err == nil {
		return "ok"
	}
	for _, r := range []struct {
		err  error
		name string
	}{
		{upstream.ErrTimeout, "timeout"}, {upstream.ErrStatus, "status"}, {upstream.ErrCertificate, "certificate"},
		{upstream.ErrTooLarge, "too_large"}, {upstream.ErrTruncated, "truncated"}, {upstream.ErrChanged, "changed"},
		{upstream.ErrBadResponse, "bad_response"}, {upstream.ErrClosed, "closed"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "error"
}

// Run polls every interval until ctx ends.
func (c *Catalog) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll checks every class once and returns the first error (each is also logged).
func (c *Catalog) Poll(ctx context.Context) error {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	var first error
	for _, cl := range c.classes {
		err := c.pollClass(ctx, cl)
		c.mu.Lock()
		cl.polled, cl.lastErr, cl.lastPoll = true, err, c.cfg.Now()
		c.mu.Unlock()
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *Catalog) pollClass(ctx context.Context, cl *class) error {
	log := c.cfg.Log.With(zap.String("class", cl.Name))
	doc, err := c.cfg.Fetcher.FetchDoc(ctx, cl.ManifestURL, cl.etag, manifest.MaxDocSize)
	if err == nil && doc.NotModified {
		if c.cfg.Observer != nil {
			c.cfg.Observer.UpstreamFetch("manifest", doc.Proto, "not_modified")
		}
	} else {
		c.observe("manifest", doc.Proto, err)
	}
	if err != nil {
		log.Warn("manifest fetch failed; serving what is cached", zap.Error(err))
		return fmt.Errorf("class %s: manifest: %w", cl.Name, err)
	}
	if doc.NotModified && cl.current != nil {
		log.Debug("manifest not modified", zap.String("proto", doc.Proto))
		return nil
	}
	sigURL := manifest.SignatureURL(cl.url).String()
	sig, err := c.cfg.Fetcher.FetchDoc(ctx, sigURL, "", manifest.MaxSigSize)
	c.observe("signature", sig.Proto, err)
	if err != nil && !errors.Is(err, upstream.ErrStatus) {
		return fmt.Errorf("class %s: signature: %w", cl.Name, err)
	}
	m, err := c.cfg.Verifier.Verify(doc.Body, sig.Body, cl.Name)
	if err != nil {
		c.refuse(cl.Name, "manifest does not verify", err)
		return err
	}
	if cur := cl.current; cur != nil {
		if err := m.CheckRollback(cur.m.Seq); err != nil {
			c.refuse(cl.Name, "rollback", err)
			return err
		}
		if m.Seq == cur.m.Seq && m.SHA256 != cur.m.SHA256 {
			err := fmt.Errorf("sequence %d already accepted with image %x", m.Seq, cur.m.SHA256[:8])
			c.refuse(cl.Name, "same sequence, different image", err)
			return err
		}
	}
	imgURL, err := m.ResolveURL(cl.url)
	if err != nil {
		c.refuse(cl.Name, "image URL", err)
		return err
	}
	if err := c.fetchImage(ctx, m, imgURL.String(), log); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := cl.current; cur == nil || cur.m.Seq != m.Seq {
		log.Info("new release ready to serve", zap.Uint32("seq", m.Seq), zap.String("version", m.Version), zap.Uint32("size", m.Size))
	}
	cl.current = &release{m: m, doc: doc.Body, sig: sig.Body}
	cl.etag = doc.ETag
	if err := c.save(); err != nil {
		log.Error("could not persist catalog state; the release is served but a restart forgets it", zap.Error(err))
	}
	return nil
}

// fetchImage makes sure the image is in the cache, resuming a partial download.
func (c *Catalog) fetchImage(ctx context.Context, m *manifest.Manifest, url string, log *zap.Logger) error {
	if c.cfg.Cache.Has(m.SHA256) {
		return nil
	}
	p, err := c.cfg.Cache.Begin(m.SHA256, int64(m.Size))
	if errors.Is(err, cache.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("class %s: cache: %w", m.Class, err)
	}
	from := p.Offset()
	proto, err := c.cfg.Fetcher.Download(ctx, url, p, from, int64(m.Size))
	c.observe("image", proto, err)
	if err != nil {
		if aerr := p.Abort(); aerr != nil {
			log.Warn("could not keep the partial image", zap.Error(aerr))
		}
		c.refuse(m.Class, "image download failed", err)
		return fmt.Errorf("class %s: image: %w", m.Class, err)
	}
	if err := p.Commit(); err != nil {
		c.refuse(m.Class, "image does not match its manifest", err)
		return fmt.Errorf("class %s: image: %w", m.Class, err)
	}
	log.Info("image fetched and verified", zap.String("proto", proto), zap.Int64("resumed_from", from), zap.Uint32("size", m.Size))
	return nil
}

// Latest implements server.Catalog: the newest cached release of the class that the device,
// running sequence running, may install; nil when there is none.
func (c *Catalog) Latest(className string, running uint32) (*server.Image, error) {
	c.mu.RLock()
	cl := c.classes[className]
	var cur *release
	polled := false
	if cl != nil {
		cur, polled = cl.current, cl.polled
	}
	c.mu.RUnlock()
	switch {
	case cl == nil:
		return nil, fmt.Errorf("%w: %q", ErrUnknownClass, className)
	case cur == nil && !polled:
		return nil, server.ErrRetry
	case cur == nil:
		return nil, nil
	}
	m := cur.m
	if m.Seq <= running {
		return nil, nil
	}
	if err := m.CheckInstall(running); err != nil {
		c.cfg.Log.Info("device below the release's minimum sequence", zap.String("class", className), zap.Uint32("running", running), zap.Error(err))
		return nil, nil
	}
	sig := m.ImageSig
	return &server.Image{
		Seq: m.Seq, Size: m.Size, Digest: m.SHA256, Signature: &sig,
		Open: func() (server.ImageReader, error) {
			e, err := c.cfg.Cache.Open(m.SHA256)
			if c.cfg.Observer != nil {
				c.cfg.Observer.CacheLookup(err == nil)
			}
			return e, err
		},
	}, nil
}

// Status is one class's state, for the admin API and the demo.
type Status struct {
	Class    string    `json:"class"`
	Seq      uint32    `json:"seq,omitempty"`
	Version  string    `json:"version,omitempty"`
	Size     uint32    `json:"size,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	LastPoll time.Time `json:"last_poll"`
	LastErr  string    `json:"last_error,omitempty"`
}

// Status lists every class.
func (c *Catalog) Status() []Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Status
	for _, cl := range c.classes {
		s := Status{Class: cl.Name, LastPoll: cl.lastPoll}
		if cl.lastErr != nil {
			s.LastErr = cl.lastErr.Error()
		}
		if cl.current != nil {
			m := cl.current.m
			s.Seq, s.Version, s.Size, s.SHA256 = m.Seq, m.Version, m.Size, fmt.Sprintf("%x", m.SHA256)
		}
		out = append(out, s)
	}
	return out
}
