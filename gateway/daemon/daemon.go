// Package daemon assembles a whole gateway from its configuration: registry, upstream client,
// cache, catalog and device server (and, in later steps, the admin API), in the order of the
// gateway's data flow. `fotagate serve` runs it for real and `fotagate demo` runs the same
// assembly against an in-process upstream, so the demo shows the product, not a model of it.
package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/catalog"
	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/gateway/upstream"
)

// Gateway is a running gateway.
type Gateway struct {
	cfg      *config.Config
	log      *zap.Logger
	Registry *registry.Registry
	Cache    *cache.Cache
	Upstream *upstream.Client
	Catalog  *catalog.Catalog
	Server   *server.Server
	devLn    net.Listener
}

// Options are the parts a caller may inject; zero values build the defaults.
type Options struct {
	Recorder  server.Recorder       // device events (the admin fleet view); may be nil
	Observer  catalog.Observer      // upstream and cache metrics; may be nil
	OnRefusal func(catalog.Refusal) // refused upstream releases; may be nil
}

// registryDevices adapts the registry to the device server.
type registryDevices struct{ r *registry.Registry }

func (d registryDevices) LookupDevice(id string) (server.Device, bool) {
	dev, ok := d.r.Lookup(id)
	return server.Device{Class: dev.Class, PSK: dev.PSK}, ok
}

// New opens every part and starts listening for devices, so the address is known before Run.
func New(cfg *config.Config, log *zap.Logger, opt Options) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: log}
	ok := false
	defer func() {
		if !ok {
			g.close()
		}
	}()
	var err error
	if g.Registry, err = registry.Load(cfg.Registry, log.Named("registry")); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var keys []ed25519.PublicKey
	for _, f := range cfg.Upstream.VendorKeys {
		k, err := manifest.LoadPublicKey(f)
		if err != nil {
			return nil, fmt.Errorf("upstream.vendor_keys: %w", err)
		}
		keys = append(keys, k)
	}
	if g.Cache, err = cache.Open(cfg.Cache.Dir, cfg.Cache.MaxBytes, log.Named("cache")); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	g.Upstream, err = upstream.New(upstream.Config{
		CABundle: cfg.Upstream.CABundle, Pins: cfg.Upstream.Pins,
		ClientCert: cfg.Upstream.ClientCert, ClientKey: cfg.Upstream.ClientKey,
		Transport: cfg.Upstream.Transport, Timeout: cfg.Upstream.Timeout, Retries: cfg.Upstream.Retries,
	}, log.Named("upstream"))
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	var classes []catalog.Class
	for _, c := range cfg.Classes {
		classes = append(classes, catalog.Class{Name: c.Name, ManifestURL: c.Manifest})
	}
	g.Catalog, err = catalog.New(catalog.Config{
		Classes: classes, Fetcher: g.Upstream, Cache: g.Cache,
		Verifier:  &manifest.Verifier{Keys: keys},
		StateFile: filepath.Join(cfg.StateDir, "catalog.json"),
		Log:       log.Named("catalog"), Observer: opt.Observer, OnRefusal: opt.OnRefusal,
	})
	if err != nil {
		return nil, err
	}
	d := cfg.Devices
	g.Server, err = server.New(server.Config{
		GatewayID: cfg.GatewayID, MaxPayload: d.MaxPayload, MaxSessions: d.MaxSessions,
		HandshakeTimeout: d.HandshakeTimeout, IdleTimeout: d.IdleTimeout,
		FailRate: rate.Limit(d.FailRate), FailBurst: d.FailBurst,
	}, registryDevices{g.Registry}, g.Catalog, opt.Recorder, log.Named("devices"))
	if err != nil {
		return nil, err
	}
	if g.devLn, err = net.Listen("tcp", d.Listen); err != nil {
		return nil, fmt.Errorf("devices.listen: %w", err)
	}
	ok = true
	return g, nil
}

// DeviceAddr is where devices connect.
func (g *Gateway) DeviceAddr() net.Addr { return g.devLn.Addr() }

// Reload re-reads the registry (SIGHUP).
func (g *Gateway) Reload() error { return g.Registry.Reload() }

// Run polls the upstream and serves devices until ctx ends, then shuts down gracefully:
// running transfers get grace to finish; the rest resume later from their durable offsets.
func (g *Gateway) Run(ctx context.Context, grace time.Duration) error {
	var wg sync.WaitGroup
	pollCtx, stopPoll := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.Catalog.Run(pollCtx, g.cfg.Upstream.PollInterval)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Server.Serve(g.devLn) }()
	g.log.Info("gateway running", zap.String("gateway_id", g.cfg.GatewayID), zap.Stringer("devices", g.DeviceAddr()),
		zap.Int("registered_devices", g.Registry.Len()), zap.Int("classes", len(g.cfg.Classes)))
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	stopPoll()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if serr := g.Server.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		g.log.Warn("shutdown", zap.Error(serr))
	}
	wg.Wait()
	g.close()
	g.log.Info("gateway stopped")
	return err
}

func (g *Gateway) close() {
	if g.devLn != nil {
		g.devLn.Close()
	}
	if g.Upstream != nil {
		g.Upstream.Close()
	}
}
