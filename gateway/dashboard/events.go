package dashboard

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/admin"
)

// The live feed is one server-sent event stream per open page. Its events, each one line
// of JSON whose HTML the server rendered with the page's own templates:
//
//	snapshot  {"devices": rows, "refusals": rows, "total": n}      id: epoch-Seq
//	update    {"devices": [{"id", "html"}], "refusals": [html]}     id: epoch-Seq
//	upstream  {"upstream": html, "cache": html}
//
// and a comment line as heartbeat. An event ID is the fleet's Seq of the last change the
// page holds, after an epoch drawn when the handler is made: a page from before a restart
// never matches a new Fleet's Seq by chance. A snapshot replaces both tables: it is sent
// when the stream starts behind the page (Last-Event-ID, or ?since= the page was rendered
// with, is not the current epoch and Seq), when the
// Fleet dropped changes for this stream (Change.Missed), and when one flush would carry
// more than the limits; otherwise changes are coalesced per device for flushEvery, so a
// fast transfer costs the browser a few updates a second, not one per acknowledgement.
//
// Memory per stream is bounded: the Fleet's subscriber buffer, at most maxPending device
// snapshots and maxRefusals refusals waiting for the next flush, and one render buffer.

type deviceHTML struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

type updateMsg struct {
	Devices  []deviceHTML `json:"devices,omitempty"`
	Refusals []string     `json:"refusals,omitempty"`
}

type snapshotMsg struct {
	Devices  string `json:"devices"`
	Refusals string `json:"refusals"`
	Total    uint64 `json:"total"`
}

type upstreamMsg struct {
	Upstream string `json:"upstream"`
	Cache    string `json:"cache"`
}

// batch is what waits for the next flush.
type batch struct {
	devices  map[string]*admin.Device
	refusals []*admin.Refusal // oldest first
	last     uint64           // Seq of the newest change in the batch
	resync   bool             // send a snapshot instead
	upstream bool             // refresh the upstream panel
}

func (b *batch) empty() bool {
	return len(b.devices) == 0 && len(b.refusals) == 0 && !b.resync && !b.upstream
}

func (b *batch) add(c admin.Change, maxPending, maxRefusals int) {
	if c.Missed > 0 {
		b.resync = true
	}
	b.last = c.Seq
	switch c.Event {
	case admin.EventUpstreamRefused, "accepted", "report", "failed":
		// The catalog may have a new error, or the cache a reader more or less.
		b.upstream = true
	}
	if b.resync {
		return // the snapshot will hold it
	}
	if d := c.Device; d != nil {
		if _, ok := b.devices[d.ID]; !ok && len(b.devices) >= maxPending {
			b.resync = true
			return
		}
		b.devices[d.ID] = d
	}
	if r := c.Refusal; r != nil {
		if len(b.refusals) >= maxRefusals {
			b.resync = true
			return
		}
		b.refusals = append(b.refusals, r)
	}
}

func (b *batch) reset() {
	clear(b.devices)
	clear(b.refusals)
	b.refusals = b.refusals[:0]
	b.resync, b.upstream = false, false
}

type stream struct {
	h   *handler
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer // rendering
	msg bytes.Buffer // the event being written
	// upstreamSum is the digest of the upstream panel last sent, so heartbeats resend it
	// only when it changed.
	upstreamSum [sha256.Size]byte
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		return // a HEAD has no body to stream into
	}
	select {
	case h.clients <- struct{}{}:
		defer func() { <-h.clients }()
	default:
		h.log.Debug("live feed refused: too many open", zap.Int("limit", h.cfg.maxClients), zap.String("remote", r.RemoteAddr))
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live dashboards are open; close one, or retry later", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	// With the http.Server's ReadTimeout set, net/http's background read of an idle
	// connection fails at the deadline and cancels the request's context: lift it. A GET has
	// no body left to read, so nothing waits on this deadline.
	rc.SetReadDeadline(time.Time{}) //nolint:errcheck // not every ResponseWriter has one

	ctx := r.Context()
	changes := h.src.Fleet.Subscribe(ctx) // ends with ctx: the client left or the server closed
	snap := h.src.Fleet.Snapshot()        // after Subscribe, so no change falls between them

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	s := &stream{h: h, w: w, rc: rc}
	s.msg.WriteString("retry: 5000\n\n")
	if since, ok := h.lastEventID(r); !ok || since != snap.Seq {
		if !s.snapshot(snap) {
			return
		}
	}
	if !s.send() {
		return
	}
	seen := snap.Seq
	b := &batch{devices: map[string]*admin.Device{}}
	flush := time.NewTicker(h.cfg.flushEvery)
	defer flush.Stop()
	beat := time.NewTicker(h.cfg.heartbeat)
	defer beat.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				return
			}
			if c.Seq <= seen && c.Missed == 0 {
				continue // already in the snapshot
			}
			b.add(c, h.cfg.maxPending, h.cfg.maxRefusals)
		case <-flush.C:
			if b.empty() {
				continue
			}
			if b.resync {
				snap := h.src.Fleet.Snapshot()
				if !s.snapshot(snap) {
					return
				}
				seen = snap.Seq
			} else if len(b.devices) > 0 || len(b.refusals) > 0 {
				if !s.update(b) {
					return
				}
				seen = b.last
			}
			if b.upstream && !s.upstream(true) {
				return
			}
			b.reset()
			if !s.send() {
				return
			}
		case <-beat.C:
			if !s.upstream(true) {
				return
			}
			if s.msg.Len() == 0 {
				s.msg.WriteString(": ping\n\n")
			}
			if !s.send() {
				return
			}
		}
	}
}

// lastEventID is the Seq the page already shows: the browser's Last-Event-ID when it
// reconnects, else the ?since= the page was rendered with. It is false for another epoch.
func (h *handler) lastEventID(r *http.Request) (uint64, bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("since")
	}
	epoch, seq, ok := strings.Cut(v, "-")
	if !ok || epoch != h.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	return n, err == nil
}

// eventID names the state of the fleet after change seq, in this handler's epoch.
func (h *handler) eventID(seq uint64) string {
	return h.epoch + "-" + strconv.FormatUint(seq, 10)
}

// noID marks an event that does not move the page's state (the upstream panel).
const noID = ^uint64(0)

// event appends one event to the message being built, with the event ID of change id
// unless id is noID. data is one line: JSON never holds a raw newline.
func (s *stream) event(name string, id uint64, data any) bool {
	js, err := json.Marshal(data)
	if err != nil {
		s.h.log.Error("live feed: encoding failed", zap.Error(err))
		return false
	}
	s.msg.WriteString("event: " + name + "\n")
	if id != noID {
		s.msg.WriteString("id: " + s.h.eventID(id) + "\n")
	}
	s.msg.WriteString("data: ")
	s.msg.Write(js)
	s.msg.WriteString("\n\n")
	return true
}

// send writes the message built so far, within the write timeout.
func (s *stream) send() bool {
	if s.msg.Len() == 0 {
		return true
	}
	s.rc.SetWriteDeadline(time.Now().Add(s.h.cfg.writeTimeout)) //nolint:errcheck // best effort
	_, err := s.w.Write(s.msg.Bytes())
	if err == nil {
		err = s.rc.Flush()
	}
	s.msg.Reset()
	if s.msg.Cap() > 1<<20 {
		s.msg = bytes.Buffer{} // a big snapshot went out: do not keep its buffer
	}
	return err == nil
}

func (s *stream) render(name string, data any) (string, bool) {
	s.buf.Reset()
	if err := s.h.tmpl.ExecuteTemplate(&s.buf, name, data); err != nil {
		s.h.log.Error("live feed: template failed", zap.String("template", name), zap.Error(err))
		return "", false
	}
	return s.buf.String(), true
}

func (s *stream) snapshot(snap admin.Snapshot) bool {
	devs, refs, _ := s.h.rows(snap, s.h.cfg.now())
	var m snapshotMsg
	var ok bool
	if m.Devices, ok = s.render("device-rows", devs); !ok {
		return false
	}
	if m.Refusals, ok = s.render("refusal-rows", refs); !ok {
		return false
	}
	m.Total = snap.Total
	return s.event("snapshot", snap.Seq, m)
}

func (s *stream) update(b *batch) bool {
	now := s.h.cfg.now()
	var m updateMsg
	if len(b.devices) > 0 {
		classes := classMap(s.h.classStatus())
		for id, d := range b.devices {
			html, ok := s.render("device-row", viewDevice(*d, classes, now))
			if !ok {
				return false
			}
			m.Devices = append(m.Devices, deviceHTML{ID: id, HTML: html})
		}
	}
	for _, r := range b.refusals {
		html, ok := s.render("refusal-row", viewRefusal(*r, now))
		if !ok {
			return false
		}
		m.Refusals = append(m.Refusals, html)
	}
	return s.event("update", b.last, m)
}

// upstream adds the upstream and cache panels to the message; onlyChanged skips them when
// they read as they did last time.
func (s *stream) upstream(onlyChanged bool) bool {
	pd := s.h.panels(s.h.cfg.now())
	var m upstreamMsg
	var ok bool
	if m.Upstream, ok = s.render("upstream", pd); !ok {
		return false
	}
	if m.Cache, ok = s.render("cache", pd); !ok {
		return false
	}
	sum := sha256.Sum256([]byte(m.Upstream + m.Cache))
	if onlyChanged && sum == s.upstreamSum {
		return true
	}
	s.upstreamSum = sum
	return s.event("upstream", noID, m)
}
