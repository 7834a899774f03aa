package upstream

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// altSvcDefaultMaxAge is RFC 7838's lifetime of an alternative without "ma".
	altSvcDefaultMaxAge = 24 * time.Hour
	// h3BrokenFor is how long "auto" leaves HTTP/3 alone for an origin after it failed
	// there, whatever the origin keeps advertising: long enough not to pay a handshake
	// timeout on every poll, short enough to notice a repaired endpoint within minutes.
	h3BrokenFor = 5 * time.Minute
	// altSvcMaxOrigins bounds the memory an upstream (or its redirects) can make us spend.
	altSvcMaxOrigins = 64
)

// altSvc remembers, per origin, where the origin said it speaks HTTP/3 (RFC 7838) and
// until when, and where HTTP/3 recently failed. Only "auto" consults it.
type altSvc struct {
	clock   Clock
	mu      sync.Mutex
	origins map[string]*altSvcEntry // by originKey
}

type altSvcEntry struct {
	h3          string    // host:port to dial over UDP; empty: none advertised
	expires     time.Time // end of the advertisement's max-age
	brokenUntil time.Time // HTTP/3 failed here; don't try before this
}

func newAltSvc(clock Clock) *altSvc {
	return &altSvc{clock: clock, origins: make(map[string]*altSvcEntry)}
}

// originKey is "host:port" of an https URL, the port made explicit.
func originKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// h3For returns the authority to try HTTP/3 at for u's origin, if one is advertised, live
// and not recently broken.
func (a *altSvc) h3For(u *url.URL) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.origins[originKey(u)]
	now := a.clock.Now()
	if e == nil || e.h3 == "" || !now.Before(e.expires) || now.Before(e.brokenUntil) {
		return "", false
	}
	return e.h3, true
}

// learn records the Alt-Svc header values of a response from u's origin.
func (a *altSvc) learn(u *url.URL, values []string) {
	if len(values) == 0 {
		return
	}
	h3, maxAge, clear, found := parseAltSvc(u.Hostname(), values)
	if !found && !clear {
		return
	}
	key := originKey(u)
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.origins[key]
	if e == nil {
		if clear {
			return
		}
		a.evictLocked()
		if len(a.origins) >= altSvcMaxOrigins {
			return
		}
		e = &altSvcEntry{}
		a.origins[key] = e
	}
	if clear {
		e.h3, e.expires = "", time.Time{}
		return
	}
	e.h3, e.expires = h3, a.clock.Now().Add(maxAge)
}

// markBroken keeps "auto" on HTTP/2 for u's origin for h3BrokenFor.
func (a *altSvc) markBroken(u *url.URL) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.origins[originKey(u)]; e != nil {
		e.brokenUntil = a.clock.Now().Add(h3BrokenFor)
	}
}

// evictLocked drops entries that no longer say anything.
func (a *altSvc) evictLocked() {
	now := a.clock.Now()
	for k, e := range a.origins {
		if !now.Before(e.expires) && !now.Before(e.brokenUntil) {
			delete(a.origins, k)
		}
	}
}

// parseAltSvc picks the first usable "h3" alternative from Alt-Svc header values. Only
// alternatives on the origin's own host are usable: the certificate is checked against the
// origin's name either way, but following another host would let a header steer our
// traffic, and the vendor has no need for it. "clear" withdraws all alternatives.
func parseAltSvc(originHost string, values []string) (h3 string, maxAge time.Duration, clear, found bool) {
	for _, v := range values {
		for alt := range strings.SplitSeq(v, ",") {
			alt = strings.TrimSpace(alt)
			if alt == "clear" {
				return "", 0, true, false
			}
			if found {
				continue
			}
			params := strings.Split(alt, ";")
			proto, authority, ok := strings.Cut(strings.TrimSpace(params[0]), "=")
			if !ok || strings.TrimSpace(proto) != "h3" {
				continue
			}
			authority, err := strconv.Unquote(strings.TrimSpace(authority))
			if err != nil {
				continue
			}
			host, port, err := net.SplitHostPort(authority)
			if err != nil || (host != "" && !strings.EqualFold(host, originHost)) {
				continue
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				continue
			}
			age := altSvcDefaultMaxAge
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.TrimSpace(k) == "ma" {
					secs, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
					if err != nil || secs < 0 {
						age = -1
						break
					}
					age = time.Duration(min(secs, int64(365*24*3600))) * time.Second
				}
			}
			if age <= 0 {
				continue
			}
			h3, maxAge, found = net.JoinHostPort(originHost, port), age, true
		}
	}
	return h3, maxAge, false, found
}
