package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Authenticator decides whether a request to the admin API may proceed.
type Authenticator interface {
	Authenticate(r *http.Request) bool
}

// AuthFunc adapts a function to an Authenticator.
type AuthFunc func(r *http.Request) bool

// Authenticate calls a(r).
func (a AuthFunc) Authenticate(r *http.Request) bool { return a(r) }

// TokenAuth accepts requests with the header "Authorization: Bearer <token>". The comparison
// is in constant time and does not depend on the token's length either: both sides are
// hashed first, so only the hash is kept. An empty token accepts nothing.
func TokenAuth(token string) Authenticator {
	if token == "" {
		return tokenAuth{}
	}
	return tokenAuth{sum: sha256.Sum256([]byte(token)), set: true}
}

// TokenFileAuth is TokenAuth with the token read from a file (surrounding white space,
// such as a final newline, is ignored). It fails if the file cannot be read or holds no
// token; the error names the file, never its content.
func TokenFileAuth(path string) (Authenticator, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("admin token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("admin token file %s is readable by others (mode %04o): it is a secret; run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("admin token file %s: empty; write a long random token to it (e.g. openssl rand -hex 32)", path)
	}
	return TokenAuth(tok), nil
}

type tokenAuth struct {
	sum [sha256.Size]byte
	set bool
}

func (a tokenAuth) Authenticate(r *http.Request) bool {
	tok, ok := bearer(r)
	if !ok || !a.set {
		return false
	}
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], a.sum[:]) == 1
}

// String and GoString keep even the token's hash out of logs and panics.
func (tokenAuth) String() string   { return "bearer token [redacted]" }
func (tokenAuth) GoString() string { return "bearer token [redacted]" }

// bearer returns the token of an "Authorization: Bearer" header; the scheme is
// case-insensitive (RFC 7235 2.1).
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// ClientCertAuth accepts requests whose TLS client certificate the server verified (the
// http.Server's tls.Config needs ClientCAs and ClientAuth VerifyClientCertIfGiven or
// stricter) and for which allow returns true; a nil allow accepts every verified
// certificate. Unverified certificates never count.
func ClientCertAuth(allow func(leaf *x509.Certificate) bool) Authenticator {
	return AuthFunc(func(r *http.Request) bool {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return false
		}
		return allow == nil || allow(r.TLS.VerifiedChains[0][0])
	})
}

// AnyOf accepts a request that any of auths accepts. With none, it accepts nothing.
func AnyOf(auths ...Authenticator) Authenticator {
	return anyOf(auths)
}

type anyOf []Authenticator

func (as anyOf) Authenticate(r *http.Request) bool {
	for _, a := range as {
		if a != nil && a.Authenticate(r) {
			return true
		}
	}
	return false
}

// AllowAnonymous turns authentication off: every request is accepted. Handler logs a warning
// when it is given one, alone or inside AnyOf.
func AllowAnonymous() Authenticator { return anonymous{} }

type anonymous struct{}

func (anonymous) Authenticate(*http.Request) bool { return true }

func allowsAnonymous(a Authenticator) bool {
	switch a := a.(type) {
	case anonymous:
		return true
	case anyOf:
		for _, b := range a {
			if allowsAnonymous(b) {
				return true
			}
		}
	}
	return false
}

// Handler serves the admin API:
//
//	GET /healthz               "ok", without authentication
//	GET /metrics               reg in the Prometheus text format
//	GET /api/v1/devices        {"devices": [Device...]}, sorted by ID
//	GET /api/v1/devices/{id}   one Device; 404 {"error": ...} when unknown
//	GET /api/v1/refusals       {"refusals": [Refusal...], "total": n}, newest first
//
// Every other path needs auth to accept the request, else the answer is 401 with
// "WWW-Authenticate: Bearer". A nil auth accepts nothing (it is logged as an error); use
// AllowAnonymous to turn authentication off. A nil f or reg leaves out its routes. The
// caller's http.Server sets the timeouts and TLS.
func Handler(f *Fleet, reg *prometheus.Registry, auth Authenticator, log *zap.Logger) http.Handler {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("admin")
	switch {
	case auth == nil:
		log.Error("admin API has no authenticator: every request but /healthz will be refused; configure a token")
	case allowsAnonymous(auth):
		log.Warn("admin API allows anonymous access: anyone who reaches it reads device state and metrics; configure a token")
	}
	a := &api{fleet: f, auth: auth, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog:      zap.NewStdLog(log),
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	if f != nil {
		mux.HandleFunc("GET /api/v1/devices", a.devices)
		mux.HandleFunc("GET /api/v1/devices/{id}", a.device)
		mux.HandleFunc("GET /api/v1/refusals", a.refusals)
	}
	return a.guard(mux)
}

type api struct {
	fleet *Fleet
	auth  Authenticator
	log   *zap.Logger
}

// publicPath is the one path served without authentication. It is compared with the path
// as requested, before ServeMux cleans it, so "/healthz/.." and the like still need a token.
const publicPath = "/healthz"

func (a *api) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != publicPath && (a.auth == nil || !a.auth.Authenticate(r)) {
			// Debug, not Warn: anyone who can connect could otherwise fill the log. The
			// Authorization header is never logged.
			a.log.Debug("admin API request refused: not authenticated",
				zap.String("remote", r.RemoteAddr), zap.String("path", r.URL.Path))
			challenge := `Bearer realm="fotagate"`
			if r.Header.Get("Authorization") != "" {
				challenge += `, error="invalid_token"` // RFC 6750 3.1
			}
			w.Header().Set("WWW-Authenticate", challenge)
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "unauthorized: send Authorization: Bearer <token>"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type apiError struct {
	Error string `json:"error"`
}

func (a *api) devices(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Devices []Device `json:"devices"`
	}{a.fleet.Devices()})
}

func (a *api) device(w http.ResponseWriter, r *http.Request) {
	d, ok := a.fleet.Device(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown device: no authenticated session has named it since the gateway started"})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *api) refusals(w http.ResponseWriter, _ *http.Request) {
	entries, total := a.fleet.Recent()
	writeJSON(w, http.StatusOK, struct {
		Refusals []Refusal `json:"refusals"`
		Total    uint64    `json:"total"` // recorded since start; the ring keeps the newest
	}{entries, total})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away; nothing to tell it
}
