package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// A browser cannot send a bearer token with a page load, so the login form takes the token
// once, checks it with the same Authenticator as the admin API, and answers with a session
// cookie. The cookie holds no token: it is an expiry and an HMAC of it under a key drawn
// at start, so it is worthless to anyone who reads it after the expiry or after a restart,
// and the server keeps nothing per session.
//
// The cookie is HttpOnly (script cannot read it), Secure (browsers send it over TLS and to
// loopback only) and SameSite=Strict (no other site can make the browser use it); its
// __Host- prefix keeps other hosts and paths from planting one.

const (
	cookieName     = "__Host-fotagate-dashboard"
	sessionContext = "fotagate dashboard session v1\x00"
	sessionLen     = 8 + sha256.Size // big-endian Unix expiry, then the MAC
	maxLoginBody   = 4 << 10
)

type sessions struct {
	key [32]byte
	ttl time.Duration
	now func() time.Time
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	s := &sessions{ttl: ttl, now: now}
	rand.Read(s.key[:]) //nolint:errcheck // crypto/rand.Read never fails
	return s
}

func (s *sessions) mac(expiry []byte) []byte {
	m := hmac.New(sha256.New, s.key[:])
	m.Write([]byte(sessionContext))
	m.Write(expiry)
	return m.Sum(nil)
}

// issue returns a new session value.
func (s *sessions) issue() string {
	b := make([]byte, 8, sessionLen)
	binary.BigEndian.PutUint64(b, uint64(s.now().Add(s.ttl).Unix()))
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// valid reports whether v is a session this handler issued and that has not expired. The
// MAC is compared in constant time before the expiry is even read.
func (s *sessions) valid(v string) bool {
	if base64.RawURLEncoding.DecodedLen(len(v)) != sessionLen {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != sessionLen {
		return false
	}
	if !hmac.Equal(b[8:], s.mac(b[:8])) {
		return false
	}
	return s.now().Unix() < int64(binary.BigEndian.Uint64(b[:8]))
}

// authorized accepts what auth accepts (bearer token, client certificate, anonymous) and a
// valid session cookie.
func (h *handler) authorized(r *http.Request) bool {
	if h.auth == nil {
		return false
	}
	return h.auth.Authenticate(r) || h.hasSession(r)
}

func (h *handler) hasSession(r *http.Request) bool {
	c, err := r.Cookie(cookieName)
	return err == nil && h.sessions.valid(c.Value)
}

// tokenAccepted asks auth about tok as if it came as a bearer token, and about nothing else
// of r: a client certificate does not turn a wrong token into a session.
func (h *handler) tokenAccepted(r *http.Request, tok string) bool {
	if h.auth == nil || tok == "" {
		return false
	}
	probe := r.Clone(r.Context())
	probe.Header = http.Header{"Authorization": {"Bearer " + tok}}
	probe.TLS = nil
	probe.Body = http.NoBody
	return h.auth.Authenticate(probe)
}

type loginData struct {
	Title   string
	Nonce   string
	Message string
	// Insecure is set when the browser will not keep the Secure cookie: plain HTTP to an
	// address that is not loopback.
	Insecure bool
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	h.renderLogin(w, r, http.StatusOK, "")
}

func (h *handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	nonce := newNonce()
	securityHeaders(w.Header(), nonce)
	h.render(w, status, "login", loginData{Title: h.title(), Nonce: nonce, Message: msg, Insecure: !secureContext(r)})
}

// secureContext tells whether a browser treats the page as a secure context, where it
// keeps Secure cookies: TLS, or a loopback host.
func secureContext(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, r, http.StatusBadRequest, "The form could not be read; try again.")
		return
	}
	if !h.tokenAccepted(r, strings.TrimSpace(r.PostForm.Get("token"))) {
		// Debug, as in gateway/admin: anyone who can connect could fill an Info log.
		h.log.Debug("dashboard login refused: token not accepted", zap.String("remote", r.RemoteAddr))
		h.renderLogin(w, r, http.StatusUnauthorized, "That token was not accepted.")
		return
	}
	h.log.Info("dashboard login", zap.String("remote", r.RemoteAddr))
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: h.sessions.issue(), Path: "/",
		MaxAge: int(h.cfg.sessionTTL / time.Second), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// logout drops the browser's cookie. The session itself stays valid until it expires or
// the gateway restarts: there is no server-side list to strike it from.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}
