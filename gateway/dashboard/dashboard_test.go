package dashboard

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotagate/fotagate/gateway/admin"
)

// routes are every route the dashboard serves behind authentication, and what a page is.
var routes = []struct {
	path string
	page bool // a browser page: the login form instead of a bare 401
}{
	{Prefix, true},
	{"/dashboard", true},
	{Prefix + "events", false},
	{Prefix + "static/app.css", false},
	{Prefix + "static/app.js", false},
	{Prefix + "no-such-page", false},
	{Prefix + "static/../events", false},
}

func TestEveryRouteRefusesRequestsWithoutCredentials(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	forged := &http.Cookie{Name: cookieName, Value: newSessions(time.Hour, time.Now).issue()} // another gateway's key
	for _, cred := range []struct {
		name string
		hdr  http.Header
	}{
		{"none", nil},
		{"wrong bearer", bearerHeader("not-the-token")},
		{"token as cookie", cookieHeader(&http.Cookie{Name: cookieName, Value: testToken})},
		{"session of another gateway", cookieHeader(forged)},
		{"garbage cookie", cookieHeader(&http.Cookie{Name: cookieName, Value: strings.Repeat("A", 54)})},
		{"token in the query", http.Header{}},
	} {
		for _, rt := range routes {
			path := rt.path
			if cred.name == "token in the query" {
				path += "?token=" + testToken
			}
			resp, body := d.do(t, http.MethodGet, path, cred.hdr, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: GET %s: %s, want 401", cred.name, path, resp.Status)
				continue
			}
			isForm := strings.Contains(body, `name="token"`)
			if rt.page != isForm {
				t.Errorf("%s: GET %s: login form %v, want %v", cred.name, path, isForm, rt.page)
			}
			if strings.Contains(body, "gw-lobby") && !rt.page || strings.Contains(body, "device-rows") {
				t.Errorf("%s: GET %s leaked the dashboard: %.200s", cred.name, path, body)
			}
		}
	}
}

func TestLoginRefusesAWrongToken(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	for _, tok := range []string{"", "wrong", testToken + "x", strings.ToUpper(testToken), testToken[:10]} {
		resp, c := d.login(t, tok)
		if resp.StatusCode != http.StatusUnauthorized || c != nil {
			t.Errorf("token %q: %s, cookie %v; want 401 and no cookie", tok, resp.Status, c)
		}
	}
	// A login form that is too large is refused before the token is looked at.
	resp, _ := d.do(t, http.MethodPost, Prefix+"login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		strings.NewReader("token="+strings.Repeat("a", maxLoginBody+1)))
	if resp.StatusCode != http.StatusBadRequest || len(resp.Cookies()) != 0 {
		t.Errorf("oversized login: %s", resp.Status)
	}
}

func TestLoginCookieOpensEveryRoute(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	resp, c := d.login(t, "  "+testToken+"\n") // pasted with white space
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != Prefix {
		t.Fatalf("login: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if c == nil {
		t.Fatal("no session cookie")
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || c.MaxAge <= 0 {
		t.Errorf("cookie attributes: %+v", c)
	}
	if strings.Contains(c.Value, testToken) {
		t.Error("the cookie holds the token")
	}
	for _, want := range []struct {
		path, ctype, has string
	}{
		{Prefix, "text/html; charset=utf-8", `id="device-rows"`},
		{Prefix + "static/app.css", "text/css; charset=utf-8", "progress"},
		{Prefix + "static/app.js", "text/javascript; charset=utf-8", "EventSource"},
	} {
		resp, body := d.do(t, http.MethodGet, want.path, cookieHeader(c), nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != want.ctype || !strings.Contains(body, want.has) {
			t.Errorf("GET %s with the cookie: %s %q, body has %q: %v", want.path, resp.Status, resp.Header.Get("Content-Type"), want.has, strings.Contains(body, want.has))
		}
	}
	resp, _ = d.do(t, http.MethodGet, "/dashboard", cookieHeader(c), nil)
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != Prefix {
		t.Errorf("/dashboard: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, _ = d.do(t, http.MethodGet, Prefix+"no-such-page", cookieHeader(c), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page with the cookie: %s", resp.Status)
	}
	feed := d.openFeed(t, "", cookieHeader(c))
	if ct := feed.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("feed content type %q", ct)
	}
	// The page offers to log out; logging out drops the cookie.
	_, body := d.do(t, http.MethodGet, Prefix, cookieHeader(c), nil)
	if !strings.Contains(body, `action="/dashboard/logout"`) {
		t.Error("no logout button for a session")
	}
	resp, _ = d.do(t, http.MethodPost, Prefix+"logout", cookieHeader(c), nil)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %s %v", resp.Status, resp.Cookies())
	}
}

func TestBearerTokenAndClientCertsWorkWithoutTheForm(t *testing.T) {
	d := newDash(t, admin.AnyOf(admin.TokenAuth(testToken), admin.ClientCertAuth(nil)), testConfig())
	resp, body := d.do(t, http.MethodGet, Prefix, bearerHeader(testToken), nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `action="/dashboard/logout"`) {
		t.Fatalf("bearer: %s (a logout button without a session: %v)", resp.Status, strings.Contains(body, "logout"))
	}
	// A client certificate does not make a wrong token a session.
	if resp, c := d.login(t, "wrong"); resp.StatusCode != http.StatusUnauthorized || c != nil {
		t.Fatalf("wrong token: %s", resp.Status)
	}
}

func TestAnonymousAndMissingAuthenticator(t *testing.T) {
	anon := newDash(t, admin.AllowAnonymous(), testConfig())
	resp, body := anon.do(t, http.MethodGet, Prefix, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Anonymous access is on") {
		t.Errorf("anonymous: %s, warning shown %v", resp.Status, strings.Contains(body, "Anonymous access is on"))
	}
	anon.openFeed(t, "", nil)

	none := newDash(t, nil, testConfig())
	for _, rt := range routes {
		if resp, _ := none.do(t, http.MethodGet, rt.path, bearerHeader(testToken), nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("nil auth: GET %s: %s", rt.path, resp.Status)
		}
	}
	if resp, c := none.login(t, testToken); resp.StatusCode != http.StatusUnauthorized || c != nil {
		t.Errorf("nil auth: login %s", resp.Status)
	}
}

func TestSessionsExpireAndResistTampering(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newSessions(time.Hour, clock)
	v := s.issue()
	if !s.valid(v) {
		t.Fatal("a fresh session is not valid")
	}
	b := []byte(v)
	for i := range b {
		tampered := bytes.Clone(b)
		tampered[i] ^= 0x01
		if s.valid(string(tampered)) {
			t.Errorf("session with byte %d changed is valid", i)
		}
	}
	for _, bad := range []string{"", v + "A", v[:len(v)-1], strings.Repeat("A", 1<<12)} {
		if s.valid(bad) {
			t.Errorf("%.20q... is valid", bad)
		}
	}
	if newSessions(time.Hour, clock).valid(v) {
		t.Error("a session is valid under another key (after a restart)")
	}
	now = now.Add(time.Hour)
	if s.valid(v) {
		t.Error("an expired session is valid")
	}
}

func TestCrossSiteFormPostsAreRefused(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	for _, path := range []string{Prefix + "login", Prefix + "logout"} {
		resp, _ := d.do(t, http.MethodPost, path, http.Header{
			"Content-Type":   {"application/x-www-form-urlencoded"},
			"Sec-Fetch-Site": {"cross-site"},
			"Origin":         {"https://evil.example"},
		}, strings.NewReader("token="+testToken))
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("cross-site POST %s: %s", path, resp.Status)
		}
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	_, c := d.login(t, testToken)
	check := func(what string, h http.Header) {
		t.Helper()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", what, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") || strings.Contains(csp, "http") {
			t.Errorf("%s: CSP %q allows more than this origin", what, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
			"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", what, k, h.Get(k), v)
			}
		}
	}
	for _, rt := range routes {
		resp, _ := d.do(t, http.MethodGet, rt.path, nil, nil)
		check("unauthenticated "+rt.path, resp.Header)
		if rt.path == Prefix+"events" {
			continue // a stream: checked below
		}
		resp, _ = d.do(t, http.MethodGet, rt.path, cookieHeader(c), nil)
		check("authenticated "+rt.path, resp.Header)
	}
	resp, body := d.do(t, http.MethodGet, Prefix+"login", nil, nil)
	check("login form", resp.Header)
	// The login page's one inline style carries the nonce of its own answer.
	m := regexp.MustCompile(`<style nonce="([^"]+)">`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "style-src 'nonce-"+m[1]+"'") {
		t.Errorf("login style nonce: %v vs %q", m, resp.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "<script") {
		t.Error("the login page has a script")
	}
	feed := d.openFeed(t, "", cookieHeader(c))
	check("feed", feed.resp.Header)
}

// hostile strings as a device or the network could send them.
const (
	hostileReason = `<script>alert("reason")</script>`
	hostileID     = `<script>alert("claimed")</script>`
	hostileRemote = `<img src=x onerror=alert(1)>:1`
	hostileError  = `x509: "<script>alert('cert')</script>"`
)

// assertEscaped fails t if html holds any hostile string unescaped, or lacks its escaped
// form where it should be shown.
func assertEscaped(t *testing.T, what, html string) {
	t.Helper()
	for _, bad := range []string{"<script>alert", "<img src=x", "onerror=alert(1)>"} {
		if strings.Contains(html, bad) {
			t.Errorf("%s: unescaped %q in %s", what, bad, html)
		}
	}
	if !strings.Contains(html, "&lt;script&gt;alert(") {
		t.Errorf("%s: the escaped text is missing: %s", what, html)
	}
}

func TestDeviceAndUpstreamTextIsEscaped(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	d.fleet.Record(handshakeFailed("dev-7", hostileRemote, hostileReason))
	d.fleet.Record(accepted("dev-1", 1000))
	d.fleet.Record(progressed("dev-1", 1000, 10))
	d.fleet.RecordUpstreamRefusal(hostileID, hostileReason, errors.New(hostileError))

	_, body := d.do(t, http.MethodGet, Prefix, bearerHeader(testToken), nil)
	assertEscaped(t, "page", body)

	// The fleet drops malformed claimed IDs; the row template must escape one anyway.
	var b strings.Builder
	r := admin.Refusal{Time: time.Now(), Kind: "handshake_failed", ClaimedID: hostileID, Remote: hostileRemote, Reason: hostileReason}
	if err := d.tmpl.ExecuteTemplate(&b, "refusal-row", viewRefusal(r, time.Now())); err != nil {
		t.Fatal(err)
	}
	assertEscaped(t, "claimed ID row", b.String())

	// Rows sent over the live feed go through the same templates.
	feed := d.openFeed(t, "", bearerHeader(testToken))
	snap := feed.await(t, "snapshot", 5*time.Second)
	assertEscaped(t, "feed snapshot", decodeHTML(t, snap.Data))
	d.fleet.RecordUpstreamRefusal("esp8266-4m", hostileReason, errors.New(hostileError))
	up := feed.await(t, "update", 5*time.Second)
	assertEscaped(t, "feed update", decodeHTML(t, up.Data))
}

// decodeHTML undoes the JSON string escaping of an event's data, so the HTML in it can be
// searched as the browser will see it.
func decodeHTML(t *testing.T, data string) string {
	t.Helper()
	r := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\"`, `"`, `\n`, "\n", `\\`, `\`)
	return r.Replace(data)
}

func TestPageShowsEveryPanel(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	d.fleet.Record(accepted("dev-1", 4000))
	d.fleet.Record(progressed("dev-1", 4000, 1000))
	d.fleet.Record(handshakeFailed("dev-9", "192.0.2.99:5000", "auth_failed"))
	d.fleet.RecordUpstreamRefusal("esp8266-4m", "manifest does not verify", errors.New("manifest: bad signature"))
	_, body := d.do(t, http.MethodGet, Prefix, bearerHeader(testToken), nil)
	for _, want := range []string{
		`id="dev-dev-1"`, `<progress value="1000" max="4000"`, "25%", // transfer
		"claims dev-9", "auth_failed", "Wrong key or unknown device ID", // device refusal
		"Upstream release refused", "manifest: bad signature", // upstream refusal
		"2.4.1", "abcdef012345", "updates.vendor.example over HTTP/3", // upstream panel
		"300.0 KiB", "1 image · 300.0 KiB of 64.0 MiB · 90% hits", "esp8266-4m", // cache panel
		`<script src="/dashboard/static/app.js" defer></script>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d script tags, want the one external script", n)
	}
}

func TestConcurrentRequestsAndRecords(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d.fleet.Record(progressed("dev-1", 1<<20, i))
		}
	})
	d.fleet.Record(accepted("dev-1", 1<<20))
	for range 20 {
		if resp, _ := d.do(t, http.MethodGet, Prefix, bearerHeader(testToken), nil); resp.StatusCode != http.StatusOK {
			t.Fatal(resp.Status)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLoginFormWarnsWhenTheBrowserWillNotKeepTheCookie(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	for host, warn := range map[string]bool{
		"127.0.0.1:8443": false, "[::1]:8443": false, "localhost": false,
		"gateway.lan:8443": true, "192.0.2.5": true,
	} {
		req := httptest.NewRequest(http.MethodGet, Prefix+"login", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		if got := strings.Contains(rec.Body.String(), "not encrypted"); got != warn {
			t.Errorf("plain HTTP to %s: warning %v, want %v", host, got, warn)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "https://gateway.lan"+Prefix+"login", nil) // sets req.TLS
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), "not encrypted") {
		t.Error("warning over TLS")
	}
}

func TestHeadOfTheFeedDoesNotStream(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	resp, _ := d.do(t, http.MethodHead, Prefix+"events", bearerHeader(testToken), nil)
	if resp.StatusCode != http.StatusOK || len(d.clients) != 0 {
		t.Fatalf("HEAD: %s, %d clients", resp.Status, len(d.clients))
	}
}
