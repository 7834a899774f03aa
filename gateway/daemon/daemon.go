// Package daemon assembles a whole gateway from its configuration: registry, upstream client,
// cache, catalog, device server, and the fleet view, metrics, admin API and dashboard, in the
// order of the gateway's data flow. `fotagate serve` runs it for real and `fotagate demo` runs the same
// assembly against an in-process upstream, so the demo shows the product, not a model of it.
package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/certs/trust"
	"github.com/fotagate/fotagate/gateway/admin"
	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/catalog"
	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/dashboard"
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
	Fleet    *admin.Fleet
	Metrics  *admin.Metrics
	Prom     *prometheus.Registry
	TLS      *gatewaytls.Manager // the admin listener's certificates; nil without tls.mode
	trust    *trust.Reloader
	devLn    net.Listener
	adminLn  net.Listener
	adminSrv *http.Server
}

// Options are the parts a caller may inject; zero values build the defaults.
type Options struct {
	Recorder  server.Recorder       // also receives every device event; may be nil
	OnRefusal func(catalog.Refusal) // refused upstream releases; may be nil
}

// recorders fans device events out to several recorders.
type recorders []server.Recorder

func (rs recorders) Record(e server.Event) {
	for _, r := range rs {
		r.Record(e)
	}
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
	g.Cache.HoldInMemory(cfg.Cache.MemoryBytes)
	g.Upstream, err = upstream.New(upstream.Config{
		CABundle: cfg.Upstream.CABundle, Pins: cfg.Upstream.Pins,
		ClientCert: cfg.Upstream.ClientCert, ClientKey: cfg.Upstream.ClientKey,
		Transport: cfg.Upstream.Transport, Timeout: cfg.Upstream.Timeout, Retries: upstreamRetries(cfg.Upstream.Retries),
	}, log)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	// The reloader loads the trust files strictly once now and again whenever they change.
	u := cfg.Upstream
	g.trust, err = trust.NewReloader(trust.Config{CABundle: u.CABundle, Pins: u.Pins, ClientCert: u.ClientCert,
		ClientKey: u.ClientKey, Interval: u.TrustReloadInterval}, g.Upstream, log.Named("trust"))
	if err != nil {
		return nil, fmt.Errorf("upstream trust: %w", err)
	}
	g.Prom = prometheus.NewRegistry()
	g.Prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if g.Metrics, err = admin.NewMetrics(g.Prom); err != nil {
		return nil, err
	}
	g.Fleet = admin.NewFleet(admin.FleetConfig{Metrics: g.Metrics}, log.Named("fleet"))
	rec := server.Recorder(g.Fleet)
	if opt.Recorder != nil {
		rec = recorders{g.Fleet, opt.Recorder}
	}
	var classes []catalog.Class
	for _, c := range cfg.Classes {
		classes = append(classes, catalog.Class{Name: c.Name, ManifestURL: c.Manifest})
	}
	g.Catalog, err = catalog.New(catalog.Config{
		Classes: classes, Fetcher: g.Upstream, Cache: g.Cache,
		Verifier:  &manifest.Verifier{Keys: keys},
		StateFile: filepath.Join(cfg.StateDir, "catalog.json"),
		Log:       log.Named("catalog"), Observer: g.Metrics, OnRefusal: func(r catalog.Refusal) {
			g.Fleet.RecordUpstreamRefusal(r.Class, r.Reason, r.Err)
			if opt.OnRefusal != nil {
				opt.OnRefusal(r)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	d := cfg.Devices
	g.Server, err = server.New(server.Config{
		GatewayID: cfg.GatewayID, MaxPayload: d.MaxPayload, MaxSessions: d.MaxSessions,
		HandshakeTimeout: d.HandshakeTimeout, IdleTimeout: d.IdleTimeout,
		FailRate: rate.Limit(d.FailRate), FailBurst: d.FailBurst,
	}, registryDevices{g.Registry}, g.Catalog, rec, log.Named("devices"))
	if err != nil {
		return nil, err
	}
	if g.devLn, err = server.ListenConfig().Listen(context.Background(), "tcp", d.Listen); err != nil {
		return nil, fmt.Errorf("devices.listen: %w", err)
	}
	if cfg.Admin.Listen != "" {
		if err := g.listenAdmin(log.Named("admin")); err != nil {
			return nil, err
		}
	}
	ok = true
	return g, nil
}

func (g *Gateway) listenAdmin(log *zap.Logger) error {
	a := g.cfg.Admin
	var auth admin.Authenticator
	switch {
	case a.TokenFile != "":
		t, err := admin.TokenFileAuth(a.TokenFile)
		if err != nil {
			return fmt.Errorf("admin.token_file: %w", err)
		}
		auth = t
		if a.AllowAnonymous {
			auth = admin.AnyOf(t, admin.AllowAnonymous())
		}
	case a.AllowAnonymous:
		auth = admin.AllowAnonymous()
	}
	var clientCAs *x509.CertPool
	if a.ClientCA != "" {
		pem, err := os.ReadFile(a.ClientCA)
		if err != nil {
			return fmt.Errorf("admin.client_ca: %w", err)
		}
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("admin.client_ca: %s holds no PEM certificate", a.ClientCA)
		}
		// Verified by the TLS layer against client_ca; any such certificate is an operator's.
		auth = admin.AnyOf(auth, admin.ClientCertAuth(nil))
	}
	var err error
	if g.adminLn, err = net.Listen("tcp", a.Listen); err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	if g.cfg.TLS.Mode != "" {
		if g.TLS, err = gatewaytls.New(g.cfg.GatewayTLS(), log.Named("tls")); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(dashboard.Prefix, dashboard.Handler(dashboard.Sources{
		Gateway: g.cfg.GatewayID, Fleet: g.Fleet,
		Catalog: g.Catalog.Status, Cache: g.Cache.List, CacheStats: g.Cache.Stats,
		Upstream: func() string { return "transport " + g.cfg.Upstream.Transport },
	}, auth, log.Named("dashboard")))
	mux.Handle("/", admin.Handler(g.Fleet, g.Prom, auth, log))
	g.adminSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	if g.TLS != nil {
		g.adminSrv.TLSConfig = g.TLS.TLSConfig()
		if clientCAs != nil {
			g.adminSrv.TLSConfig.ClientCAs = clientCAs
			g.adminSrv.TLSConfig.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return nil
}

// AdminAddr is the admin API's address; nil when it is disabled.
func (g *Gateway) AdminAddr() net.Addr {
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

// upstreamRetries maps the config's count (0 = none) to upstream's (0 = default, -1 = none).
func upstreamRetries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// DeviceAddr is where devices connect.
func (g *Gateway) DeviceAddr() net.Addr { return g.devLn.Addr() }

// Reload re-reads the registry and the upstream trust files (SIGHUP).
func (g *Gateway) Reload() error {
	_, terr := g.trust.Check()
	return errors.Join(g.Registry.Reload(), terr)
}

// Run polls the upstream and serves devices until ctx ends, then shuts down gracefully:
// running transfers get grace to finish; the rest resume later from their durable offsets.
func (g *Gateway) Run(ctx context.Context, grace time.Duration) error {
	var wg sync.WaitGroup
	pollCtx, stopPoll := context.WithCancel(context.Background())
	wg.Add(2)
	go func() {
		defer wg.Done()
		g.Catalog.Run(pollCtx, g.cfg.Upstream.PollInterval)
	}()
	go func() {
		defer wg.Done()
		g.trust.Run(pollCtx)
	}()
	serveErr := make(chan error, 2)
	go func() { serveErr <- g.Server.Serve(g.devLn) }()
	if g.adminSrv != nil {
		go func() {
			var err error
			if g.TLS != nil {
				err = g.adminSrv.ServeTLS(g.adminLn, "", "")
			} else {
				err = g.adminSrv.Serve(g.adminLn)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("admin: %w", err)
			}
		}()
		// After the admin server runs, so it can answer a TLS-ALPN-01 challenge itself.
		if g.TLS != nil {
			if err := g.TLS.Start(); err != nil {
				g.log.Error("certificate management did not start; the admin API has no certificate", zap.Error(err))
			}
		}
	}
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
	if g.adminSrv != nil {
		g.adminSrv.Close()
	}
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
	if g.adminLn != nil {
		g.adminLn.Close()
	}
	if g.TLS != nil {
		g.TLS.Close()
	}
	if g.Upstream != nil {
		g.Upstream.Close()
	}
}
