package dashboard

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/admin"
	"github.com/fotagate/fotagate/gateway/cache"
	"github.com/fotagate/fotagate/gateway/catalog"
)

// Prefix is the path the dashboard serves under. Mount Handler at Prefix (and at Prefix
// without its final slash, which redirects): every route it serves starts with it.
const Prefix = "/dashboard/"

// Fleet is what the dashboard reads of admin.Fleet.
type Fleet interface {
	Snapshot() admin.Snapshot
	Subscribe(ctx context.Context) <-chan admin.Change
}

// Sources are what the dashboard shows. Only Fleet is required; a nil func hides its part.
type Sources struct {
	Gateway    string                  // shown in the title, e.g. the gateway ID
	Fleet      Fleet                   // devices, refusals and the live feed
	Catalog    func() []catalog.Status // upstream state per class (catalog.Catalog.Status)
	Cache      func() []cache.Info     // cached images (cache.Cache.List)
	CacheStats func() cache.Stats      // cache totals (cache.Cache.Stats)
	Upstream   func() string           // one line on the upstream link, e.g. its host and protocol
}

// config holds the limits; Handler uses defaultConfig and tests shorten the times.
type config struct {
	now          func() time.Time
	heartbeat    time.Duration // idle streams get a ping (and the upstream panel) this often
	flushEvery   time.Duration // changes are coalesced per device for this long
	writeTimeout time.Duration // a stream write that takes longer drops the client
	maxClients   int           // concurrent live streams
	maxPending   int           // devices changed in one flush before a full snapshot instead
	maxRefusals  int           // refusals in one flush before a full snapshot instead
	sessionTTL   time.Duration
}

func defaultConfig() config {
	return config{
		now:          time.Now,
		heartbeat:    15 * time.Second,
		flushEvery:   250 * time.Millisecond,
		writeTimeout: 10 * time.Second,
		maxClients:   32,
		maxPending:   512,
		maxRefusals:  64,
		sessionTTL:   12 * time.Hour,
	}
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Handler serves the dashboard under Prefix:
//
//	GET  /dashboard/                the page (without credentials: the login form, 401)
//	GET  /dashboard/events          the live feed, text/event-stream
//	GET  /dashboard/static/{file}   style and script
//	GET  /dashboard/login           the login form
//	POST /dashboard/login           form field "token": on success a session cookie, 303 to the page
//	POST /dashboard/logout          drops the session cookie
//
// Every route but login and logout needs auth to accept the request (a bearer token or a
// verified client certificate, as for the admin API) or a session cookie that the login
// form issued after auth accepted the token; without either the answer is 401. A nil auth
// accepts nothing; admin.AllowAnonymous turns authentication off. src.Fleet must not be nil.
//
// The caller's http.Server sets TLS and the timeouts; the live feed lifts the read deadline
// of its own connection and sets a write deadline per message. http.Server.Shutdown waits
// for live feeds until its context ends: use Close, or end the context early.
func Handler(src Sources, auth admin.Authenticator, log *zap.Logger) http.Handler {
	return newHandler(src, auth, log, defaultConfig())
}

type handler struct {
	src       Sources
	auth      admin.Authenticator
	anonymous bool
	log       *zap.Logger
	cfg       config
	tmpl      *template.Template
	static    fs.FS
	sessions  *sessions
	epoch     string        // of the live feed's event IDs; see events.go
	clients   chan struct{} // a slot per live stream
	mux       *http.ServeMux
	csrf      *http.CrossOriginProtection
}

func newHandler(src Sources, auth admin.Authenticator, log *zap.Logger, cfg config) *handler {
	if src.Fleet == nil {
		panic("dashboard: Sources.Fleet is nil")
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("dashboard")
	h := &handler{
		src: src, auth: auth, log: log, cfg: cfg,
		tmpl:     template.Must(template.New("").ParseFS(templateFS, "templates/*.html")),
		sessions: newSessions(cfg.sessionTTL, cfg.now),
		epoch:    newEpoch(),
		clients:  make(chan struct{}, cfg.maxClients),
		mux:      http.NewServeMux(),
		csrf:     http.NewCrossOriginProtection(),
	}
	h.static, _ = fs.Sub(staticFS, "static")
	switch {
	case auth == nil:
		log.Error("dashboard has no authenticator: nobody can open it; configure admin.token_file")
	case acceptsAnyone(auth):
		h.anonymous = true
		log.Warn("dashboard allows anonymous access: anyone who reaches it sees the fleet; configure admin.token_file")
	}
	h.mux.HandleFunc("GET "+Prefix+"{$}", h.page)
	h.mux.HandleFunc("GET "+Prefix+"events", h.events)
	h.mux.HandleFunc("GET "+Prefix+"static/{file}", h.staticFile)
	h.mux.HandleFunc("GET "+Prefix+"login", h.loginForm)
	h.mux.HandleFunc("POST "+Prefix+"login", h.login)
	h.mux.HandleFunc("POST "+Prefix+"logout", h.logout)
	return h
}

// acceptsAnyone tells whether auth lets in a request that carries no credentials at all,
// as admin.AllowAnonymous does, alone or in admin.AnyOf.
func acceptsAnyone(auth admin.Authenticator) bool {
	r, err := http.NewRequest(http.MethodGet, Prefix, nil)
	return err == nil && auth.Authenticate(r)
}

// publicPaths are served without credentials. They are compared with the path as
// requested, before ServeMux cleans it, as gateway/admin does.
var publicPaths = map[string]bool{Prefix + "login": true, Prefix + "logout": true}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header(), "")
	if err := h.csrf.Check(r); err != nil {
		// A form posted from another site: the login and logout forms are the only
		// state-changing requests, and both must come from this page.
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	if !publicPaths[r.URL.Path] && !h.authorized(r) {
		h.unauthorized(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// securityHeaders go on every answer. The policy allows this origin's style and script
// only: no inline script at all, inline style only with the login page's nonce.
func securityHeaders(hd http.Header, styleNonce string) {
	style := "'self'"
	if styleNonce != "" {
		style = "'nonce-" + styleNonce + "'"
	}
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src "+style+
		"; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// unauthorized answers a page with the login form and anything else (the feed, the
// static files, unknown paths) with a bare 401, both without saying what exists.
func (h *handler) unauthorized(w http.ResponseWriter, r *http.Request) {
	h.log.Debug("dashboard request refused: not authenticated",
		zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path))
	w.Header().Set("WWW-Authenticate", `Bearer realm="fotagate"`)
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == Prefix || r.URL.Path+"/" == Prefix) {
		h.renderLogin(w, r, http.StatusUnauthorized, "")
		return
	}
	http.Error(w, "unauthorized: log in at "+Prefix+"login, or send Authorization: Bearer <token>", http.StatusUnauthorized)
}

// pageData is the whole page.
type pageData struct {
	Title     string
	Anonymous bool
	CanLogout bool
	Since     string // the live feed's event ID of this page's state
	Summary   summary
	Devices   []deviceView
	Refusals  []refusalView
	Panels    panelData
}

// panelData is the upstream and cache half, which the feed refreshes on its own.
type panelData struct {
	HasCatalog bool
	Classes    []classView
	Upstream   string
	Cache      *cacheView
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	now := h.cfg.now()
	pd := h.panels(now)
	snap := h.src.Fleet.Snapshot()
	d := pageData{Title: h.title(), Anonymous: h.anonymous, CanLogout: h.hasSession(r), Since: h.eventID(snap.Seq), Panels: pd}
	d.Devices, d.Refusals, d.Summary = h.rows(snap, now)
	h.render(w, http.StatusOK, "page", d)
}

func (h *handler) title() string {
	if h.src.Gateway == "" {
		return "gateway"
	}
	return h.src.Gateway
}

// classStatus returns the catalog's state per class, for the upstream panel and to name
// the version a device runs.
func (h *handler) classStatus() []catalog.Status {
	if h.src.Catalog == nil {
		return nil
	}
	return h.src.Catalog()
}

func (h *handler) panels(now time.Time) panelData {
	sts := h.classStatus()
	pd := panelData{HasCatalog: h.src.Catalog != nil, Classes: viewClasses(sts, now)}
	if h.src.Upstream != nil {
		pd.Upstream = h.src.Upstream()
	}
	if h.src.Cache != nil {
		var st *cache.Stats
		if h.src.CacheStats != nil {
			s := h.src.CacheStats()
			st = &s
		}
		pd.Cache = viewCache(h.src.Cache(), st, sts)
	}
	return pd
}

func (h *handler) rows(snap admin.Snapshot, now time.Time) ([]deviceView, []refusalView, summary) {
	classes := classMap(h.classStatus())
	s := summary{Devices: len(snap.Devices), Refusals: snap.Total}
	devs := make([]deviceView, 0, len(snap.Devices))
	for _, d := range snap.Devices {
		v := viewDevice(d, classes, now)
		if v.Transfer != nil {
			s.Updating++
		}
		if v.Attention {
			s.Attention++
		}
		devs = append(devs, v)
	}
	refs := make([]refusalView, 0, len(snap.Refusals))
	for _, r := range snap.Refusals {
		refs = append(refs, viewRefusal(r, now))
	}
	return devs, refs, s
}

func classMap(sts []catalog.Status) map[string]catalog.Status {
	m := make(map[string]catalog.Status, len(sts))
	for _, s := range sts {
		m[s.Class] = s
	}
	return m
}

// render executes a template into memory first, so a template error becomes a clean 500
// instead of half a page.
func (h *handler) render(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("dashboard template failed", zap.String("template", name), zap.Error(err))
		http.Error(w, "internal error: the dashboard could not render this page; see the gateway log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes()) //nolint:errcheck // the client went away
}

func (h *handler) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if _, err := fs.Stat(h.static, name); err != nil {
		http.NotFound(w, r)
		return
	}
	http.ServeFileFS(w, r, h.static, name)
}

// newEpoch returns 8 random hex digits: no "-", which separates it from the Seq.
func newEpoch() string {
	var b [4]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// newNonce returns a fresh CSP nonce, base64url so that html/template has nothing to escape
// in it.
func newNonce() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}
