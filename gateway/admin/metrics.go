package admin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/protocol"
)

// Session results, the values of fotagate_sessions_total{result}. Every connection ends in
// exactly one of them.
const (
	resultHandshakeFailed = "handshake_failed"
	resultUpToDate        = "up_to_date"
	resultRetry           = "retry"
	resultRefused         = "refused"
	resultInstalled       = "installed"
	resultVerifyFailed    = "verify_failed"
	resultFailed          = "failed"
)

// labelOther replaces any label value outside its fixed set, so a caller (or a future
// reason) cannot grow the number of series.
const labelOther = "other"

// Metrics holds the gateway's Prometheus metrics on one registry. Fleet feeds the session
// metrics from every event it records; upstream and cache call the exported methods. All
// methods are safe for concurrent use, and do nothing on a nil *Metrics.
type Metrics struct {
	sessions          *prometheus.CounterVec
	active            prometheus.Gauge
	handshakeFailures *prometheus.CounterVec
	refusals          *prometheus.CounterVec
	transferFailures  *prometheus.CounterVec
	bytesSent         prometheus.Counter
	reports           *prometheus.CounterVec
	upstream          *prometheus.CounterVec
	cacheHits         prometheus.Counter
	cacheMisses       prometheus.Counter
	cacheBytes        prometheus.Gauge

	// sessionsBy caches the sessions counter of each result: Record is hot.
	sessionsBy map[string]prometheus.Counter
	reasons    map[string]bool // the reason label's fixed set
}

// NewMetrics creates the metrics and registers them on reg, normally a
// prometheus.NewRegistry() of this gateway's own. It fails if reg already holds them; then it
// registers nothing.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("admin metrics: nil registry")
	}
	m := &Metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fotagate_sessions_total",
			Help: "Device connections by how they ended: handshake_failed, up_to_date, refused, installed, verify_failed or failed.",
		}, []string{"result"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fotagate_sessions_active",
			Help: "Transfers in progress: offers accepted minus transfers ended (reported or failed).",
		}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fotagate_handshake_failures_total",
			Help: "Connections that ended before an authenticated offer, by reason (auth_failed, busy, rate_limited...).",
		}, []string{"reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fotagate_offer_refusals_total",
			Help: "Offers the devices refused, by reason (rollback, wrong_class, bad_signature...).",
		}, []string{"reason"}),
		transferFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fotagate_transfer_failures_total",
			Help: "Transfers that broke off before the device reported, by reason (timeout, truncated...).",
		}, []string{"reason"}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fotagate_bytes_sent_total",
			Help: "Image bytes the devices acknowledged as durable; counted as the acknowledgements arrive, each session from the offset it resumed at. Framing and unacknowledged bytes are not included.",
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fotagate_device_reports_total",
			Help: "Devices' verification reports after a complete transfer, by outcome (ok, digest_mismatch, bad_signature, flash_error...).",
		}, []string{"outcome"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fotagate_upstream_fetches_total",
			Help: "Fetches from the upstream, by kind (manifest, signature, image), protocol (h2, h3, http/1.1) and result.",
		}, []string{"kind", "proto", "result"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fotagate_cache_hits_total",
			Help: "Image cache lookups that found the image.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fotagate_cache_misses_total",
			Help: "Image cache lookups that did not find the image.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fotagate_cache_bytes",
			Help: "Bytes of committed images in the cache.",
		}),
		reasons: knownReasons(),
	}
	m.sessionsBy = map[string]prometheus.Counter{}
	for _, r := range []string{resultHandshakeFailed, resultUpToDate, resultRetry, resultRefused, resultInstalled, resultVerifyFailed, resultFailed} {
		m.sessionsBy[r] = m.sessions.WithLabelValues(r) // also exports every result at 0
	}
	cs := []prometheus.Collector{m.sessions, m.active, m.handshakeFailures, m.refusals, m.transferFailures,
		m.bytesSent, m.reports, m.upstream, m.cacheHits, m.cacheMisses, m.cacheBytes}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("admin metrics: %w (one Metrics per registry)", err)
		}
	}
	return m, nil
}

// observe counts one event with the effect Fleet found it had. sessions_active follows the
// fleet's own count of running sessions, so it cannot drift on an event the fleet could not
// attribute to a device.
func (m *Metrics) observe(e server.Event, eff effect) {
	if m == nil {
		return
	}
	switch e.Kind {
	case server.EventHandshakeFailed:
		m.sessionsBy[resultHandshakeFailed].Inc()
		m.handshakeFailures.WithLabelValues(m.reason(e.Reason)).Inc()
	case server.EventUpToDate:
		m.sessionsBy[resultUpToDate].Inc()
	case server.EventRetry:
		m.sessionsBy[resultRetry].Inc()
	case server.EventRefused:
		m.sessionsBy[resultRefused].Inc()
		m.refusals.WithLabelValues(m.reason(e.Reason)).Inc()
	case server.EventAccepted:
		if eff.started {
			m.active.Inc()
		}
	case server.EventReport:
		if eff.ended {
			m.active.Dec()
		}
		if e.Reason == "ok" {
			m.sessionsBy[resultInstalled].Inc()
		} else {
			m.sessionsBy[resultVerifyFailed].Inc()
		}
		m.reports.WithLabelValues(m.reason(e.Reason)).Inc()
	case server.EventFailed:
		if eff.ended {
			m.active.Dec()
		}
		m.sessionsBy[resultFailed].Inc()
		m.transferFailures.WithLabelValues(m.reason(e.Reason)).Inc()
	}
	if eff.sent > 0 {
		m.bytesSent.Add(float64(eff.sent))
	}
}

// reason maps a reason to its label value: itself when it is one of the fixed set, "other"
// when not.
func (m *Metrics) reason(r string) string {
	if m.reasons[r] {
		return r
	}
	return labelOther
}

// knownReasons is the reason label's fixed set: every wire code's name, every name
// protocol.Reason gives, and the server's own "rate_limited" and "closed". A reason added to protocol
// later shows as "other" until it is added here.
func knownReasons() map[string]bool {
	set := map[string]bool{labelOther: true, "ok": true, "rate_limited": true, "closed": true}
	for c := range 256 {
		if n := protocol.CodeName(byte(c)); !strings.HasPrefix(n, "code_") {
			set[n] = true
		}
	}
	for _, err := range []error{
		protocol.ErrMalformed, protocol.ErrFrameTooLarge, protocol.ErrUnexpectedMessage,
		protocol.ErrAuthFailed, protocol.ErrBadRecord, protocol.ErrTruncated,
		protocol.ErrCounterExhausted, protocol.ErrUnsupportedVersion, protocol.ErrUnsupportedSuite,
		protocol.ErrRollback, protocol.ErrWrongClass, protocol.ErrTooLarge, protocol.ErrBadChunk,
		protocol.ErrBadSignature, protocol.ErrDigestMismatch, protocol.ErrBusy,
		protocol.ErrUnavailable, protocol.ErrTimeout, protocol.ErrFlash, protocol.ErrDeclined,
	} {
		set[protocol.Reason(err)] = true
	}
	return set
}

// UpstreamFetch counts one fetch from the upstream. kind is "manifest", "signature" or "image"; proto is
// the protocol the answer came over, "h2", "h3" or "http/1.1" (upstream.Proto*); result is
// "ok", "not_modified", "error", or the failure's class: "timeout", "status", "certificate",
// "too_large", "truncated", "changed", "bad_response" or "closed". Any other value is
// counted as "other".
func (m *Metrics) UpstreamFetch(kind, proto, result string) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(oneOf(kind, "manifest", "signature", "image"), oneOf(proto, "h2", "h3", "http/1.1"),
		oneOf(result, "ok", "not_modified", "error", "timeout", "status", "certificate", "too_large",
			"truncated", "changed", "bad_response", "closed")).Inc()
}

// CacheLookup counts one image cache lookup.
func (m *Metrics) CacheLookup(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// CacheBytes sets the bytes of committed images in the cache.
func (m *Metrics) CacheBytes(n int64) {
	if m == nil {
		return
	}
	m.cacheBytes.Set(float64(n))
}

func oneOf(v string, allowed ...string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return labelOther
}
