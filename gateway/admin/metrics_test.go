package admin

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fotagate/fotagate/gateway/server"
)

func TestMetricsCountSessions(t *testing.T) {
	type want struct {
		sessions                   map[string]float64 // by result; absent results must be 0
		active, bytes              float64
		handshake, refused, failed map[string]float64 // by reason
		reports                    map[string]float64 // by outcome
	}
	tests := []struct {
		name   string
		events []server.Event
		want   want
	}{{
		name: "installed",
		events: []server.Event{
			accepted("dev-01", 1, 2, 1000, 0), progress("dev-01", 2, 1000, 600), report("dev-01", 1, 2, 1000, 1000, "ok"),
		},
		want: want{sessions: map[string]float64{"installed": 1}, bytes: 1000, reports: map[string]float64{"ok": 1}},
	}, {
		name:   "in progress",
		events: []server.Event{accepted("dev-01", 1, 2, 1000, 100), progress("dev-01", 2, 1000, 600)},
		want:   want{active: 1, bytes: 500},
	}, {
		name: "verify failed",
		events: []server.Event{
			accepted("dev-01", 1, 2, 1000, 0), report("dev-01", 1, 2, 1000, 1000, "flash_error"),
		},
		want: want{sessions: map[string]float64{"verify_failed": 1}, bytes: 1000, reports: map[string]float64{"flash_error": 1}},
	}, {
		name: "failed mid-transfer",
		events: []server.Event{
			accepted("dev-01", 1, 2, 1000, 0), progress("dev-01", 2, 1000, 200), failed("dev-01", 1, 2, 1000, 200, "truncated"),
		},
		want: want{sessions: map[string]float64{"failed": 1}, bytes: 200, failed: map[string]float64{"truncated": 1}},
	}, {
		name: "refusals and up to date",
		events: []server.Event{
			refused("dev-01", 5, 4, "rollback"), refused("dev-02", 5, 6, "wrong_class"), refused("dev-03", 5, 6, "wrong_class"),
			upToDate("dev-04", 6),
		},
		want: want{
			sessions: map[string]float64{"refused": 3, "up_to_date": 1},
			refused:  map[string]float64{"rollback": 1, "wrong_class": 2},
		},
	}, {
		name: "handshake failures by reason",
		events: []server.Event{
			handshakeFailed("dev-01", remote, "auth_failed"), handshakeFailed("", remote, "rate_limited"),
			handshakeFailed("", remote, "busy"), handshakeFailed("", remote, "timeout"),
			handshakeFailed("", remote, "something new"),
		},
		want: want{
			sessions:  map[string]float64{"handshake_failed": 5},
			handshake: map[string]float64{"auth_failed": 1, "rate_limited": 1, "busy": 1, "timeout": 1, "other": 1},
		},
	}}
	results := []string{resultHandshakeFailed, resultUpToDate, resultRetry, resultRefused, resultInstalled, resultVerifyFailed, resultFailed}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, m, _, _ := newTestFleet(t, FleetConfig{})
			for _, e := range tt.events {
				f.Record(e)
			}
			for _, r := range results {
				if got := testutil.ToFloat64(m.sessions.WithLabelValues(r)); got != tt.want.sessions[r] {
					t.Errorf("sessions_total{result=%q} = %v, want %v", r, got, tt.want.sessions[r])
				}
			}
			if got := testutil.ToFloat64(m.active); got != tt.want.active {
				t.Errorf("sessions_active = %v, want %v", got, tt.want.active)
			}
			if got := testutil.ToFloat64(m.bytesSent); got != tt.want.bytes {
				t.Errorf("bytes_sent_total = %v, want %v", got, tt.want.bytes)
			}
			for _, vec := range []struct {
				name string
				v    *prometheus.CounterVec
				want map[string]float64
			}{
				{"handshake_failures_total", m.handshakeFailures, tt.want.handshake},
				{"offer_refusals_total", m.refusals, tt.want.refused},
				{"transfer_failures_total", m.transferFailures, tt.want.failed},
				{"device_reports_total", m.reports, tt.want.reports},
			} {
				if got := testutil.CollectAndCount(vec.v); got != len(vec.want) {
					t.Errorf("%s has %d series, want %d", vec.name, got, len(vec.want))
				}
				for label, want := range vec.want {
					if got := testutil.ToFloat64(vec.v.WithLabelValues(label)); got != want {
						t.Errorf("%s{%s} = %v, want %v", vec.name, label, got, want)
					}
				}
			}
		})
	}
}

func TestReasonLabelsStayBounded(t *testing.T) {
	f, m, _, _ := newTestFleet(t, FleetConfig{})
	for i := range 1000 {
		f.Record(handshakeFailed("", remote, fmt.Sprintf("attacker-chosen-%d", i)))
		f.Record(report("dev-01", 1, 2, 10, 10, fmt.Sprintf("code_%#02x", i%256)))
	}
	if n := testutil.CollectAndCount(m.handshakeFailures); n != 1 {
		t.Fatalf("handshake_failures_total has %d series, want only \"other\"", n)
	}
	if got := testutil.ToFloat64(m.handshakeFailures.WithLabelValues("other")); got != 1000 {
		t.Fatalf("other = %v, want 1000", got)
	}
	if n := testutil.CollectAndCount(m.reports); n != 1 {
		t.Fatalf("device_reports_total has %d series for unknown codes, want only \"other\"", n)
	}
}

func TestKnownReasonsCoverTheProtocol(t *testing.T) {
	set := knownReasons()
	for _, r := range []string{"ok", "auth_failed", "bad_record", "truncated", "rollback", "wrong_class", "bad_signature",
		"digest_mismatch", "flash_error", "timeout", "busy", "unavailable", "declined", "rate_limited", "other"} {
		if !set[r] {
			t.Errorf("reason %q would be counted as other", r)
		}
	}
	for r := range set {
		if strings.HasPrefix(r, "code_") || r == "" {
			t.Errorf("label value %q in the fixed set", r)
		}
	}
}

func TestMetricNames(t *testing.T) {
	_, m, reg, _ := newTestFleet(t, FleetConfig{})
	// Touch every vector so each has a series to gather.
	m.UpstreamFetch("image", "h3", "ok")
	m.CacheLookup(true)
	m.handshakeFailures.WithLabelValues("busy")
	m.refusals.WithLabelValues("rollback")
	m.transferFailures.WithLabelValues("timeout")
	m.reports.WithLabelValues("ok")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{
		"fotagate_bytes_sent_total", "fotagate_cache_bytes", "fotagate_cache_hits_total", "fotagate_cache_misses_total",
		"fotagate_device_reports_total", "fotagate_handshake_failures_total", "fotagate_offer_refusals_total",
		"fotagate_sessions_active", "fotagate_sessions_total", "fotagate_transfer_failures_total",
		"fotagate_upstream_fetches_total",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("metrics\n got %v\nwant %v", got, want)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestUpstreamAndCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct{ kind, proto, result string }{
		{"manifest", "h3", "ok"},
		{"manifest", "h3", "ok"},
		{"image", "h2", "timeout"},
		{"image", "http/1.1", "not_modified"},
		{"firmware", "h2", "ok"},             // unknown kind
		{"image", "spdy", "ok"},              // unknown protocol
		{"image", "h2", "EOF from 10.0.0.1"}, // free text
	}
	for _, c := range calls {
		m.UpstreamFetch(c.kind, c.proto, c.result)
	}
	for _, tt := range []struct {
		kind, proto, result string
		want                float64
	}{
		{"manifest", "h3", "ok", 2},
		{"image", "h2", "timeout", 1},
		{"image", "http/1.1", "not_modified", 1},
		{"other", "h2", "ok", 1},
		{"image", "other", "ok", 1},
		{"image", "h2", "other", 1},
	} {
		if got := testutil.ToFloat64(m.upstream.WithLabelValues(tt.kind, tt.proto, tt.result)); got != tt.want {
			t.Errorf("upstream_fetches_total{%s,%s,%s} = %v, want %v", tt.kind, tt.proto, tt.result, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(m.upstream); n != 6 {
		t.Errorf("upstream_fetches_total has %d series, want 6", n)
	}

	for _, hit := range []bool{true, true, false, true} {
		m.CacheLookup(hit)
	}
	m.CacheBytes(1 << 20)
	m.CacheBytes(4096)
	if h, mi, b := testutil.ToFloat64(m.cacheHits), testutil.ToFloat64(m.cacheMisses), testutil.ToFloat64(m.cacheBytes); h != 3 || mi != 1 || b != 4096 {
		t.Fatalf("cache hits %v misses %v bytes %v; want 3, 1, 4096", h, mi, b)
	}
}

func TestNewMetricsRefusesARegistryTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("a second Metrics registered on the same registry")
	}
	if _, err := NewMetrics(nil); err == nil {
		t.Fatal("nil registry accepted")
	}
}

func TestNewMetricsRegistersNothingOnFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	clash := prometheus.NewCounter(prometheus.CounterOpts{Name: "fotagate_cache_bytes", Help: "someone else's"})
	reg.MustRegister(clash)
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registered over a clashing collector")
	}
	// Everything NewMetrics did register before the clash must be gone again.
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 1 {
		t.Fatalf("registry holds %d series (err %v), want only the clashing one", n, err)
	}
}

// Tests run many gateways in one process: each has its own registry and counts alone.
func TestGatewaysInOneProcessCountApart(t *testing.T) {
	f1, m1, _, _ := newTestFleet(t, FleetConfig{})
	_, m2, _, _ := newTestFleet(t, FleetConfig{})
	f1.Record(upToDate("dev-01", 3))
	m1.CacheLookup(true)
	if a, b := testutil.ToFloat64(m1.sessionsBy[resultUpToDate]), testutil.ToFloat64(m2.sessionsBy[resultUpToDate]); a != 1 || b != 0 {
		t.Fatalf("up_to_date: gateway 1 %v, gateway 2 %v", a, b)
	}
	if b := testutil.ToFloat64(m2.cacheHits); b != 0 {
		t.Fatalf("gateway 2 counted gateway 1's cache hit")
	}
}

func TestNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	m.UpstreamFetch("image", "h2", "ok")
	m.CacheLookup(true)
	m.CacheBytes(1)
	f := NewFleet(FleetConfig{}, nil) // no metrics
	f.Record(accepted("dev-01", 1, 2, 10, 0))
	f.Record(report("dev-01", 1, 2, 10, 10, "ok"))
	if d := mustDevice(t, f, "dev-01"); d.Counters.BytesSent != 10 {
		t.Fatalf("fleet without metrics: %+v", d)
	}
}
