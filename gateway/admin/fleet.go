package admin

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/protocol"
)

// Outcome is how a device's last session ended.
type Outcome string

// Outcomes of a session, as Result and the recent ring name them.
const (
	OutcomeInstalled    Outcome = "installed"     // the device verified the image (Report "ok")
	OutcomeVerifyFailed Outcome = "verify_failed" // the device received the image and rejected it
	OutcomeRefused      Outcome = "refused"       // the device refused the offer (rollback, class...)
	OutcomeFailed       Outcome = "failed"        // the transfer broke off; the device resumes later
	OutcomeUpToDate     Outcome = "up_to_date"    // there was nothing newer to offer
	OutcomeRetry        Outcome = "retry"         // told to come back: the gateway was still fetching
)

// Device is a snapshot of one device's state. Snapshots are copies: changing one changes
// nothing in the Fleet.
type Device struct {
	ID         string    `json:"id"`
	Class      string    `json:"class"`
	Running    uint32    `json:"running"`               // sequence the device last said it runs (Hello)
	Remote     string    `json:"remote"`                // address of its last session
	LastSeen   time.Time `json:"last_seen"`             // last event of any kind
	Transfer   *Transfer `json:"transfer,omitempty"`    // nil when nothing is streaming to it
	LastResult *Result   `json:"last_result,omitempty"` // nil until a session has ended
	Counters   Counters  `json:"counters"`
}

// Transfer is the image streaming to a device.
type Transfer struct {
	Seq      uint32    `json:"seq"`
	Size     uint32    `json:"size"`
	From     uint32    `json:"from"`     // offset the session resumed from
	Offset   uint32    `json:"offset"`   // durable offset the device last acknowledged
	Started  time.Time `json:"started"`  // when the device accepted the offer
	Updated  time.Time `json:"updated"`  // last acknowledgement (Started before the first)
	Progress float64   `json:"progress"` // Offset/Size, 0 to 1
	// BytesPerSecond is the average since Started of the bytes this session got
	// acknowledged, measured at the snapshot: it falls while a transfer stalls.
	BytesPerSecond float64 `json:"bytes_per_second"`
}

// Result is how a device's last session ended.
type Result struct {
	Time    time.Time `json:"time"`
	Outcome Outcome   `json:"outcome"`
	Seq     uint32    `json:"seq,omitempty"`    // the image offered; 0 for up_to_date
	Reason  string    `json:"reason,omitempty"` // protocol.Reason name; "ok" for installed
}

// Counters count a device's sessions since the gateway started.
type Counters struct {
	Transfers    uint64 `json:"transfers"` // offers accepted
	Installed    uint64 `json:"installed"`
	VerifyFailed uint64 `json:"verify_failed"`
	Refused      uint64 `json:"refused"`
	Failed       uint64 `json:"failed"`
	UpToDate     uint64 `json:"up_to_date"`
	BytesSent    uint64 `json:"bytes_sent"` // image bytes the device acknowledged as durable
}

// Refusal is one entry of the ring of recent refusals and failures.
type Refusal struct {
	Time time.Time `json:"time"`
	// Kind is "handshake_failed", the Outcome "refused", "verify_failed" or "failed" of a
	// device session, or KindUpstream for a release the catalog refused.
	Kind string `json:"kind"`
	// DeviceID is set for authenticated events only.
	DeviceID string `json:"device_id,omitempty"`
	// ClaimedID is the ID a failed handshake's Hello named. Nothing verified it: it tells
	// which key to check, not who connected.
	ClaimedID string `json:"claimed_id,omitempty"`
	Remote    string `json:"remote,omitempty"`
	Reason    string `json:"reason"`
	Seq       uint32 `json:"seq,omitempty"`
	// Class and Error are set for upstream refusals only: the class whose release was
	// refused and the error that explains why (clipped).
	Class string `json:"class,omitempty"`
	Error string `json:"error,omitempty"`
}

// KindUpstream is the Refusal.Kind of a release the catalog refused, and EventUpstreamRefused
// the Change.Event that announces it.
const (
	KindUpstream         = "upstream"
	EventUpstreamRefused = "upstream_refused"
)

// Change is one recorded event as a subscriber sees it.
type Change struct {
	Seq   uint64    `json:"seq"` // one more than the Fleet's previous change; gaps mean Missed
	Time  time.Time `json:"time"`
	Event string    `json:"event"` // server.EventKind name ("accepted", "progress"...) or EventUpstreamRefused
	// Device is the device's state after the event; nil for a failed handshake. Every
	// subscriber gets the same pointer: read it, do not change it.
	Device *Device `json:"device,omitempty"`
	// Refusal is set when the event entered the recent ring.
	Refusal *Refusal `json:"refusal,omitempty"`
	// Missed counts the changes dropped for this subscriber just before this one, because
	// its buffer was full. A subscriber that sees Missed > 0 should reload the full state.
	Missed uint64 `json:"missed,omitempty"`
}

// FleetConfig configures a Fleet. Zero fields take the defaults.
type FleetConfig struct {
	Now              func() time.Time // clock; time.Now when nil
	Metrics          *Metrics         // fed from every Record; nil for none
	RecentSize       int              // refusals and failures Recent keeps; 200 when 0
	SubscriberBuffer int              // changes queued per subscriber before dropping; 256 when 0
}

// Limits on what an event can make the Fleet keep, whoever builds the events.
const (
	defaultRecentSize       = 200
	defaultSubscriberBuffer = 256
	maxReasonLen            = 64  // protocol.Reason names and catalog reasons are far shorter
	maxRemoteLen            = 128 // an IPv6 host:port with a zone fits
	maxClassLen             = 64
	maxErrorLen             = 512 // an upstream error names a URL and a certificate problem
)

// Fleet keeps the state of the devices the device server talks to. It implements
// server.Recorder and is safe for concurrent use.
//
// Only authenticated events (up_to_date, refused, accepted, progress, report, failed) create
// or update a device, so the devices are bounded by the registry. A failed handshake names
// an ID nobody verified: it goes to the recent ring and the metrics only, so spraying IDs
// cannot grow the device map.
type Fleet struct {
	now     func() time.Time
	metrics *Metrics
	log     *zap.Logger
	subBuf  int

	// mu guards everything below. Record holds it for a few field updates, plus one
	// non-blocking send per subscriber when there are subscribers.
	mu      sync.Mutex
	seq     uint64
	devices map[string]*device
	recent  []Refusal // ring, oldest overwritten first
	next    int       // where the next refusal goes once the ring is full
	total   uint64    // refusals ever recorded
	subs    map[*subscriber]struct{}
}

type device struct {
	id, class, remote string
	running           uint32
	lastSeen          time.Time
	// active counts sessions accepted and not yet ended. Events carry no session ID, so
	// when a device reconnects while its old session is still timing out, the transfer
	// shown is the newest one and it is cleared when the last session ends.
	active   int
	transfer Transfer // valid while active > 0
	result   Result   // valid when result.Outcome != ""
	counters Counters
}

type subscriber struct {
	ch      chan Change
	missed  uint64 // dropped since the last delivered change
	dropped uint64 // dropped in all
}

// NewFleet returns an empty Fleet. log may be nil.
func NewFleet(cfg FleetConfig, log *zap.Logger) *Fleet {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RecentSize <= 0 {
		cfg.RecentSize = defaultRecentSize
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = defaultSubscriberBuffer
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Fleet{
		now:     cfg.Now,
		metrics: cfg.Metrics,
		log:     log,
		subBuf:  cfg.SubscriberBuffer,
		devices: map[string]*device{},
		recent:  make([]Refusal, 0, cfg.RecentSize),
		subs:    map[*subscriber]struct{}{},
	}
}

// Record updates the fleet and the metrics with one event. It never blocks on subscribers.
func (f *Fleet) Record(e server.Event) {
	if e.Kind < server.EventHandshakeFailed || e.Kind > server.EventRetry {
		return // a kind this package does not know yet, or Offered: a device is known by its answer
	}
	now := f.now()
	var eff effect

	f.mu.Lock()
	f.seq++
	var d *device
	var ref *Refusal
	if e.Kind == server.EventHandshakeFailed {
		ref = f.pushRecent(Refusal{
			Time:      now,
			Kind:      kindName(e.Kind),
			ClaimedID: claimedID(e.DeviceID),
			Remote:    clip(e.Remote, maxRemoteLen),
			Reason:    clip(e.Reason, maxReasonLen),
		})
	} else if e.DeviceID != "" {
		d = f.devices[e.DeviceID]
		if d == nil {
			d = &device{id: e.DeviceID}
			f.devices[e.DeviceID] = d
		}
		var r *Refusal
		eff, r = d.apply(e, now)
		if r != nil {
			ref = f.pushRecent(*r)
		}
	}
	if len(f.subs) > 0 {
		f.publish(e, now, d, ref)
	}
	f.mu.Unlock()

	f.metrics.observe(e, eff)
}

// effect is what an event did to a device, for the metrics.
type effect struct {
	sent    uint64 // image bytes newly acknowledged
	started bool   // an accepted offer started a session
	ended   bool   // a report or failure ended a session the fleet saw start
}

// apply updates d with an authenticated event. It returns its effect, and the refusal to
// remember if the event is one.
func (d *device) apply(e server.Event, now time.Time) (eff effect, ref *Refusal) {
	d.lastSeen = now
	if e.Class != "" {
		d.class = e.Class
	}
	if e.Remote != "" {
		d.remote = clip(e.Remote, maxRemoteLen)
	}
	switch e.Kind {
	case server.EventUpToDate:
		d.running = e.Running // only handshake-time events carry the Hello's sequence
		d.counters.UpToDate++
		d.result = Result{Time: now, Outcome: OutcomeUpToDate}
	case server.EventRetry:
		d.running = e.Running
		d.result = Result{Time: now, Outcome: OutcomeRetry}
	case server.EventRefused:
		d.running = e.Running
		d.counters.Refused++
		d.result = Result{Time: now, Outcome: OutcomeRefused, Seq: e.Seq, Reason: clip(e.Reason, maxReasonLen)}
	case server.EventAccepted:
		d.running = e.Running
		d.counters.Transfers++
		d.active++
		eff.started = true
		from := min(e.Offset, e.Size)
		d.transfer = Transfer{Seq: e.Seq, Size: e.Size, From: from, Offset: from, Started: now, Updated: now}
	case server.EventProgress:
		eff.sent = d.advance(e, now)
	case server.EventReport:
		eff.sent = d.advance(e, now)
		eff.ended = d.end()
		reason := clip(e.Reason, maxReasonLen)
		if reason == "ok" {
			d.counters.Installed++
			d.result = Result{Time: now, Outcome: OutcomeInstalled, Seq: e.Seq, Reason: reason}
		} else {
			d.counters.VerifyFailed++
			d.result = Result{Time: now, Outcome: OutcomeVerifyFailed, Seq: e.Seq, Reason: reason}
		}
	case server.EventFailed:
		eff.sent = d.advance(e, now)
		eff.ended = d.end()
		d.counters.Failed++
		d.result = Result{Time: now, Outcome: OutcomeFailed, Seq: e.Seq, Reason: clip(e.Reason, maxReasonLen)}
	}
	d.counters.BytesSent += eff.sent
	if e.Kind == server.EventRefused || e.Kind == server.EventFailed ||
		e.Kind == server.EventReport && d.result.Outcome == OutcomeVerifyFailed {
		ref = &Refusal{Time: now, Kind: string(d.result.Outcome), DeviceID: d.id, Remote: d.remote, Reason: d.result.Reason, Seq: e.Seq}
	}
	return eff, ref
}

// advance moves the transfer to the durable offset e reports and returns the bytes gained.
// Offsets only grow within a session, so a lower one (a stale session of the same device)
// gains nothing; counting from acknowledgements makes bytes_sent move during long transfers
// instead of jumping at their end, and counts each session's bytes once: final offset minus
// the offset it resumed from.
func (d *device) advance(e server.Event, now time.Time) uint64 {
	if d.active == 0 || e.Seq != d.transfer.Seq {
		return 0
	}
	off := min(e.Offset, d.transfer.Size)
	if off <= d.transfer.Offset {
		return 0
	}
	gained := off - d.transfer.Offset
	d.transfer.Offset, d.transfer.Updated = off, now
	return uint64(gained)
}

// end ends one of d's sessions and reports whether one was running.
func (d *device) end() bool {
	if d.active == 0 {
		return false
	}
	d.active--
	if d.active == 0 {
		d.transfer = Transfer{}
	}
	return true
}

func (d *device) snapshot(now time.Time) Device {
	s := Device{
		ID: d.id, Class: d.class, Running: d.running, Remote: d.remote, LastSeen: d.lastSeen,
		Counters: d.counters,
	}
	if d.active > 0 {
		t := d.transfer
		if t.Size > 0 {
			t.Progress = float64(t.Offset) / float64(t.Size)
		}
		if secs := now.Sub(t.Started).Seconds(); secs > 0 {
			t.BytesPerSecond = float64(t.Offset-t.From) / secs
		}
		s.Transfer = &t
	}
	if d.result.Outcome != "" {
		r := d.result
		s.LastResult = &r
	}
	return s
}

// pushRecent adds r to the ring and returns a copy for subscribers. Callers hold f.mu.
func (f *Fleet) pushRecent(r Refusal) *Refusal {
	if len(f.recent) < cap(f.recent) {
		f.recent = append(f.recent, r)
	} else {
		f.recent[f.next] = r
		f.next = (f.next + 1) % len(f.recent)
	}
	f.total++
	return &r
}

// RecordUpstreamRefusal adds a release the catalog refused (wire it to
// catalog.Config.OnRefusal) to the recent ring with Kind KindUpstream, and announces it to
// subscribers as an EventUpstreamRefused Change. Devices and metrics are untouched. The
// error's text is kept, clipped: it is what tells the operator which certificate, signature
// or digest was wrong.
func (f *Fleet) RecordUpstreamRefusal(class, reason string, err error) {
	r := Refusal{Kind: KindUpstream, Class: clipText(class, maxClassLen), Reason: clipText(reason, maxReasonLen)}
	if err != nil {
		r.Error = clipText(err.Error(), maxErrorLen)
	}
	now := f.now()
	r.Time = now
	f.mu.Lock()
	f.seq++
	ref := f.pushRecent(r)
	if len(f.subs) > 0 {
		f.send(Change{Seq: f.seq, Time: now, Event: EventUpstreamRefused, Refusal: ref})
	}
	f.mu.Unlock()
}

// publish offers the change an event made to every subscriber without waiting. Callers hold
// f.mu, which keeps the changes in Seq order and lets unsubscribe close channels safely.
func (f *Fleet) publish(e server.Event, now time.Time, d *device, ref *Refusal) {
	c := Change{Seq: f.seq, Time: now, Event: kindName(e.Kind), Refusal: ref}
	if d != nil {
		s := d.snapshot(now)
		c.Device = &s
	}
	f.send(c)
}

// send offers c to every subscriber without waiting. Callers hold f.mu.
func (f *Fleet) send(c Change) {
	for s := range f.subs {
		c.Missed = s.missed
		select {
		case s.ch <- c:
			s.missed = 0
		default:
			s.missed++
			s.dropped++
		}
	}
}

// Snapshot is the whole fleet as of one change, read under one lock: what a subscriber
// loads first, and reloads after a Change with Missed > 0. Changes with a Seq above Seq are
// not in it; those at or below are.
type Snapshot struct {
	Seq      uint64    `json:"seq"`
	Devices  []Device  `json:"devices"`  // sorted by ID
	Refusals []Refusal `json:"refusals"` // newest first
	Total    uint64    `json:"total"`    // refusals recorded in all
}

// Snapshot returns the devices and the recent ring as of the latest change.
func (f *Fleet) Snapshot() Snapshot {
	now := f.now()
	f.mu.Lock()
	s := Snapshot{Seq: f.seq, Devices: make([]Device, 0, len(f.devices)), Refusals: f.recentLocked(), Total: f.total}
	for _, d := range f.devices {
		s.Devices = append(s.Devices, d.snapshot(now))
	}
	f.mu.Unlock()
	slices.SortFunc(s.Devices, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// Devices returns a snapshot of every device, sorted by ID.
func (f *Fleet) Devices() []Device {
	now := f.now()
	f.mu.Lock()
	out := make([]Device, 0, len(f.devices))
	for _, d := range f.devices {
		out = append(out, d.snapshot(now))
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Device returns a snapshot of one device, and false if no authenticated session has
// named it.
func (f *Fleet) Device(id string) (Device, bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[id]
	if !ok {
		return Device{}, false
	}
	return d.snapshot(now), true
}

// Recent returns the refusals and failures the ring still holds, newest first, and how many
// were recorded in all (so total - len(entries) fell out of the ring).
func (f *Fleet) Recent() (entries []Refusal, total uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recentLocked(), f.total
}

// recentLocked copies the ring, newest first. Callers hold f.mu.
func (f *Fleet) recentLocked() []Refusal {
	out := make([]Refusal, 0, len(f.recent))
	// The newest entry sits just before next (or at the end while the ring fills).
	for i := range len(f.recent) {
		j := (f.next - 1 - i + 2*len(f.recent)) % len(f.recent)
		out = append(out, f.recent[j])
	}
	return out
}

// Subscribe returns a channel of changes, one per recorded event, until ctx ends; then the
// channel is closed. Each subscriber has its own bounded buffer: when it is full, changes
// are dropped for that subscriber (counted in the next Change's Missed) and Record goes on.
// ctx must end eventually, or the subscription lives as long as the Fleet.
func (f *Fleet) Subscribe(ctx context.Context) <-chan Change {
	s := &subscriber{ch: make(chan Change, f.subBuf)}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		delete(f.subs, s)
		close(s.ch)
		dropped := s.dropped
		f.mu.Unlock()
		if dropped > 0 {
			f.log.Debug("change subscriber ended; it was too slow for some changes", zap.Uint64("dropped", dropped))
		}
	})
	return s.ch
}

// kindName is k's name, without EventKind.String's panic on values it does not know.
func kindName(k server.EventKind) string {
	if k < server.EventHandshakeFailed || k > server.EventRetry {
		return "unknown"
	}
	return k.String()
}

// claimedID keeps an unverified ID only if it is a well-formed device ID, so whatever
// reaches the ring is short and printable.
func claimedID(id string) string {
	if protocol.CheckDeviceID(id) != nil {
		return ""
	}
	return id
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// clipText clips free text (an error message, a configured name) and repairs a character
// the cut split, so what the ring keeps is valid UTF-8 for JSON and HTML.
func clipText(s string, n int) string {
	return strings.ToValidUTF8(clip(s, n), "\uFFFD")
}
