package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const token = "0f3c9a7e5b1d4c2a8e6f0b9d7c5a3e1f"

// newAPI serves a small fleet over loopback: dev-02 up to date, dev-01 installed image 2,
// one handshake failure.
func newAPI(t *testing.T, auth Authenticator, log *zap.Logger) *httptest.Server {
	t.Helper()
	f, _, reg, _ := newTestFleet(t, FleetConfig{})
	f.Record(upToDate("dev-02", 4))
	f.Record(accepted("dev-01", 1, 2, 1000, 0))
	f.Record(progress("dev-01", 2, 1000, 1000))
	f.Record(report("dev-01", 1, 2, 1000, 1000, "ok"))
	f.Record(handshakeFailed("dev-66", "203.0.113.9:5000", "auth_failed"))
	srv := httptest.NewServer(Handler(f, reg, auth, log))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, url, authorization string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestAPIAuthentication(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	tests := []struct {
		name, path, authz string
		status            int
		challenge         string // WWW-Authenticate on a 401
	}{
		{"health needs nothing", "/healthz", "", 200, ""},
		{"health ignores a bad token", "/healthz", "Bearer nope", 200, ""},
		{"devices without a token", "/api/v1/devices", "", 401, `Bearer realm="fotagate"`},
		{"devices with the token", "/api/v1/devices", "Bearer " + token, 200, ""},
		{"scheme is case-insensitive", "/api/v1/devices", "bearer " + token, 200, ""},
		{"wrong token", "/api/v1/devices", "Bearer " + token[:len(token)-1] + "0", 401, `Bearer realm="fotagate", error="invalid_token"`},
		{"token prefix", "/api/v1/devices", "Bearer " + token[:8], 401, `Bearer realm="fotagate", error="invalid_token"`},
		{"token with a suffix", "/api/v1/devices", "Bearer " + token + "x", 401, `Bearer realm="fotagate", error="invalid_token"`},
		{"token without scheme", "/api/v1/devices", token, 401, `Bearer realm="fotagate", error="invalid_token"`},
		{"basic scheme", "/api/v1/devices", "Basic " + token, 401, `Bearer realm="fotagate", error="invalid_token"`},
		{"empty bearer", "/api/v1/devices", "Bearer ", 401, `Bearer realm="fotagate", error="invalid_token"`},
		{"metrics without a token", "/metrics", "", 401, `Bearer realm="fotagate"`},
		{"metrics with the token", "/metrics", "Bearer " + token, 200, ""},
		{"device without a token", "/api/v1/devices/dev-01", "", 401, `Bearer realm="fotagate"`},
		{"refusals without a token", "/api/v1/refusals", "", 401, `Bearer realm="fotagate"`},
		{"unknown path hides behind auth", "/debug/pprof/", "", 401, `Bearer realm="fotagate"`},
		{"health look-alike needs a token", "/healthz/../api/v1/devices", "", 401, `Bearer realm="fotagate"`},
		{"health prefix needs a token", "/healthzz", "", 401, `Bearer realm="fotagate"`},
		{"unknown path with the token", "/nothing-here", "Bearer " + token, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.path // sent as is, not cleaned by the client
			if tt.authz != "" {
				req.Header.Set("Authorization", tt.authz)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if tt.status == 401 {
				var e apiError
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Fatalf("401 body %q is not a JSON error (%v)", body, err)
				}
			}
		})
	}
}

func TestAPIHealthz(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	resp, body := get(t, srv.Client(), srv.URL+"/healthz", "")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestAPIListsDevicesSortedByID(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	resp, body := get(t, srv.Client(), srv.URL+"/api/v1/devices", "Bearer "+token)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got struct{ Devices []Device }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	if len(got.Devices) != 2 || got.Devices[0].ID != "dev-01" || got.Devices[1].ID != "dev-02" {
		t.Fatalf("devices %+v", got.Devices)
	}
	d := got.Devices[0]
	if d.LastResult == nil || d.LastResult.Outcome != OutcomeInstalled || d.Counters.BytesSent != 1000 || d.Class != class {
		t.Fatalf("dev-01 %+v", d)
	}
}

func TestAPIDevice(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	tests := []struct {
		id     string
		status int
	}{
		{"dev-02", 200},
		{"dev-66", 404}, // only a failed handshake named it
		{"dev-03", 404},
		{"%00%ff", 404},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			resp, body := get(t, srv.Client(), srv.URL+"/api/v1/devices/"+tt.id, "Bearer "+token)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d (%q), want %d; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, body)
			}
			if tt.status == 404 {
				var e apiError
				if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, "unknown device") {
					t.Fatalf("404 body %s (%v)", body, err)
				}
				return
			}
			var d Device
			if err := json.Unmarshal(body, &d); err != nil || d.ID != tt.id || d.Running != 4 {
				t.Fatalf("device %+v (%v)", d, err)
			}
		})
	}
}

func TestAPIRefusals(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	_, body := get(t, srv.Client(), srv.URL+"/api/v1/refusals", "Bearer "+token)
	var got struct {
		Refusals []Refusal
		Total    uint64
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	if got.Total != 1 || len(got.Refusals) != 1 {
		t.Fatalf("refusals %s", body)
	}
	r := got.Refusals[0]
	if r.Kind != "handshake_failed" || r.ClaimedID != "dev-66" || r.DeviceID != "" || r.Reason != "auth_failed" || r.Remote != "203.0.113.9:5000" {
		t.Fatalf("refusal %+v", r)
	}
}

func TestAPIMetricsExposeTheCounters(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	resp, body := get(t, srv.Client(), srv.URL+"/metrics", "Bearer "+token)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, line := range []string{
		`fotagate_sessions_total{result="installed"} 1`,
		`fotagate_sessions_total{result="up_to_date"} 1`,
		`fotagate_sessions_total{result="handshake_failed"} 1`,
		`fotagate_handshake_failures_total{reason="auth_failed"} 1`,
		`fotagate_device_reports_total{outcome="ok"} 1`,
		`fotagate_bytes_sent_total 1000`,
		`fotagate_sessions_active 0`,
	} {
		if !strings.Contains(string(body), "\n"+line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestAPIOnlyAnswersGET(t *testing.T) {
	srv := newAPI(t, TokenAuth(token), nil)
	for _, method := range []string{http.MethodPost, http.MethodDelete, http.MethodPut} {
		req, _ := http.NewRequest(method, srv.URL+"/api/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", method, resp.StatusCode)
		}
	}
}

func TestAPIAuthConfigurationIsLogged(t *testing.T) {
	tests := []struct {
		name     string
		auth     Authenticator
		level    zapcore.Level // of the one expected entry; 0 with want false
		want     bool
		openDoor bool // requests without credentials pass
	}{
		{"token", TokenAuth(token), 0, false, false},
		{"anonymous", AllowAnonymous(), zap.WarnLevel, true, true},
		{"anonymous inside AnyOf", AnyOf(TokenAuth(token), AllowAnonymous()), zap.WarnLevel, true, true},
		{"nil fails closed", nil, zap.ErrorLevel, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			srv := newAPI(t, tt.auth, zap.New(core))
			if got := logs.Len(); got != map[bool]int{false: 0, true: 1}[tt.want] {
				t.Fatalf("%d log entries at construction: %v", got, logs.All())
			}
			if tt.want && logs.All()[0].Level != tt.level {
				t.Fatalf("logged at %v, want %v", logs.All()[0].Level, tt.level)
			}
			resp, _ := get(t, srv.Client(), srv.URL+"/api/v1/devices", "")
			if open := resp.StatusCode == 200; open != tt.openDoor {
				t.Fatalf("anonymous request: status %d", resp.StatusCode)
			}
		})
	}
}

func TestTokenNeverReachesTheLog(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	auth := TokenAuth(token)
	srv := newAPI(t, auth, zap.New(core))
	for _, authz := range []string{"Bearer " + token, "Bearer " + token + "-wrong", "Basic " + token} {
		get(t, srv.Client(), srv.URL+"/api/v1/devices", authz)
		get(t, srv.Client(), srv.URL+"/metrics", authz)
	}
	if logs.FilterMessageSnippet("not authenticated").Len() == 0 {
		t.Fatal("refused requests were not logged at debug level at all")
	}
	for _, e := range logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, token[:12]) {
			t.Fatalf("the token reached the log: %s", line)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v %s", auth, auth, auth, auth); strings.Contains(s, token[:12]) || strings.Contains(s, "0x") {
		t.Fatalf("printing the authenticator shows the token or its hash: %s", s)
	}
}

func TestTokenAuthRejectsAnEmptyToken(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/devices", nil)
	for _, authz := range []string{"", "Bearer", "Bearer ", "Bearer  "} {
		req.Header.Set("Authorization", authz)
		if TokenAuth("").Authenticate(req) {
			t.Fatalf("an empty token accepted %q", authz)
		}
	}
}

func TestTokenFileAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"token and newline", write("tok", token+"\n"), false},
		{"token with CRLF", write("crlf", token+"\r\n"), false},
		{"empty file", write("empty", ""), true},
		{"white space only", write("blank", " \n\t\n"), true},
		{"missing file", filepath.Join(dir, "absent"), true},
		{"readable by others", func() string {
			p := write("open", token+"\n")
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}(), true},
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := TokenFileAuth(tt.path)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), filepath.Base(tt.path)) {
					t.Fatalf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !a.Authenticate(req) {
				t.Fatal("the file's token was not accepted")
			}
		})
	}
}

// pki is a test CA and the client certificates it issues.
type pki struct {
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fotagate test admin CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &pki{ca: ca, key: key, pool: pool}
}

func (p *pki) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestClientCertAuth(t *testing.T) {
	p := newPKI(t)
	f, _, reg, _ := newTestFleet(t, FleetConfig{})
	auth := AnyOf(TokenAuth(token), ClientCertAuth(func(leaf *x509.Certificate) bool {
		return leaf.Subject.CommonName == "ops"
	}))
	srv := httptest.NewUnstartedServer(Handler(f, reg, auth, nil))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.pool}
	srv.StartTLS()
	defer srv.Close()

	clientWith := func(certs ...tls.Certificate) *http.Client {
		c := srv.Client()
		tr := c.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = certs
		return &http.Client{Transport: tr}
	}
	tests := []struct {
		name   string
		client *http.Client
		authz  string
		status int
	}{
		{"no certificate, no token", clientWith(), "", 401},
		{"no certificate, token", clientWith(), "Bearer " + token, 200},
		{"allowed certificate", clientWith(p.client(t, "ops")), "", 200},
		{"verified but not allowed", clientWith(p.client(t, "intruder")), "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.client, srv.URL+"/api/v1/devices", tt.authz)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
		})
	}

	// Over plain HTTP, or with a certificate nobody verified, there is nothing to trust.
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if ClientCertAuth(nil).Authenticate(req) {
		t.Fatal("a request without TLS passed the certificate check")
	}
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{p.ca}}
	if ClientCertAuth(nil).Authenticate(req) {
		t.Fatal("an unverified peer certificate passed the certificate check")
	}
}

func TestAnyOf(t *testing.T) {
	yes := AuthFunc(func(*http.Request) bool { return true })
	no := AuthFunc(func(*http.Request) bool { return false })
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	tests := []struct {
		name  string
		auths []Authenticator
		want  bool
	}{
		{"none", nil, false},
		{"one no", []Authenticator{no}, false},
		{"nil entries", []Authenticator{nil, no, nil}, false},
		{"no then yes", []Authenticator{no, yes}, true},
		{"yes after nil", []Authenticator{nil, yes}, true},
	}
	for _, tt := range tests {
		if got := AnyOf(tt.auths...).Authenticate(req); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
