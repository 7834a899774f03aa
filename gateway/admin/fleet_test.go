package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fotagate/fotagate/gateway/server"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestFleet returns a fleet with its own registry and metrics, as one gateway has.
func newTestFleet(t *testing.T, cfg FleetConfig) (*Fleet, *Metrics, *prometheus.Registry, *clock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	cfg.Now, cfg.Metrics = clk.Now, m
	return NewFleet(cfg, nil), m, reg, clk
}

const (
	class  = "esp8266-a"
	remote = "192.0.2.7:40001"
)

// Events as gateway/server builds them: handshake-time events carry the Hello's Running;
// progress events do not.
func upToDate(id string, running uint32) server.Event {
	return server.Event{Kind: server.EventUpToDate, DeviceID: id, Remote: remote, Class: class, Running: running}
}

func refused(id string, running, seq uint32, reason string) server.Event {
	return server.Event{Kind: server.EventRefused, DeviceID: id, Remote: remote, Class: class, Running: running, Seq: seq, Reason: reason}
}

func accepted(id string, running, seq, size, from uint32) server.Event {
	return server.Event{Kind: server.EventAccepted, DeviceID: id, Remote: remote, Class: class, Running: running, Seq: seq, Size: size, Offset: from}
}

func progress(id string, seq, size, off uint32) server.Event {
	return server.Event{Kind: server.EventProgress, DeviceID: id, Remote: remote, Class: class, Seq: seq, Size: size, Offset: off}
}

func report(id string, running, seq, size, off uint32, reason string) server.Event {
	return server.Event{Kind: server.EventReport, DeviceID: id, Remote: remote, Class: class, Running: running, Seq: seq, Size: size, Offset: off, Reason: reason}
}

func failed(id string, running, seq, size, off uint32, reason string) server.Event {
	return server.Event{Kind: server.EventFailed, DeviceID: id, Remote: remote, Class: class, Running: running, Seq: seq, Size: size, Offset: off, Reason: reason}
}

func handshakeFailed(claimed, from, reason string) server.Event {
	return server.Event{Kind: server.EventHandshakeFailed, DeviceID: claimed, Remote: from, Reason: reason}
}

func mustDevice(t *testing.T, f *Fleet, id string) Device {
	t.Helper()
	d, ok := f.Device(id)
	if !ok {
		t.Fatalf("device %q unknown to the fleet", id)
	}
	return d
}

func TestFleetFollowsSuccessfulTransfer(t *testing.T) {
	f, _, _, clk := newTestFleet(t, FleetConfig{})
	start := clk.Now()

	f.Record(accepted("dev-01", 6, 7, 1000, 0))
	d := mustDevice(t, f, "dev-01")
	if d.Class != class || d.Running != 6 || d.Remote != remote || !d.LastSeen.Equal(start) {
		t.Fatalf("after accepted: %+v", d)
	}
	if d.Transfer == nil || d.Transfer.Seq != 7 || d.Transfer.Size != 1000 || d.Transfer.Offset != 0 || !d.Transfer.Started.Equal(start) {
		t.Fatalf("after accepted: transfer %+v", d.Transfer)
	}
	if d.LastResult != nil {
		t.Fatalf("result before any session ended: %+v", d.LastResult)
	}

	clk.Advance(2 * time.Second)
	f.Record(progress("dev-01", 7, 1000, 400))
	d = mustDevice(t, f, "dev-01")
	tr := d.Transfer
	if tr == nil || tr.Offset != 400 || tr.Progress != 0.4 || tr.BytesPerSecond != 200 || !tr.Updated.Equal(clk.Now()) {
		t.Fatalf("after 400 bytes in 2s: transfer %+v", tr)
	}
	if d.Running != 6 {
		t.Fatalf("progress (which carries no Running) changed Running to %d", d.Running)
	}
	// A stall lowers the estimate: it is measured at the snapshot.
	clk.Advance(2 * time.Second)
	if tr := mustDevice(t, f, "dev-01").Transfer; tr.BytesPerSecond != 100 {
		t.Fatalf("after a 2s stall: %v B/s, want 100", tr.BytesPerSecond)
	}

	f.Record(progress("dev-01", 7, 1000, 1000))
	f.Record(report("dev-01", 6, 7, 1000, 1000, "ok"))
	d = mustDevice(t, f, "dev-01")
	if d.Transfer != nil {
		t.Fatalf("transfer still shown after the report: %+v", d.Transfer)
	}
	want := Result{Time: clk.Now(), Outcome: OutcomeInstalled, Seq: 7, Reason: "ok"}
	if d.LastResult == nil || *d.LastResult != want {
		t.Fatalf("result %+v, want %+v", d.LastResult, want)
	}
	wantC := Counters{Transfers: 1, Installed: 1, BytesSent: 1000}
	if d.Counters != wantC {
		t.Fatalf("counters %+v, want %+v", d.Counters, wantC)
	}
	if entries, total := f.Recent(); len(entries) != 0 || total != 0 {
		t.Fatalf("a success entered the refusals ring: %+v", entries)
	}
}

func TestFleetRecordsHowSessionsEnd(t *testing.T) {
	tests := []struct {
		name       string
		events     []server.Event
		want       Result // Time is filled in
		counters   Counters
		running    uint32
		refusal    string // Kind of the one expected ring entry; "" for none
		inTransfer bool
	}{{
		name:     "up to date",
		events:   []server.Event{upToDate("dev-01", 9)},
		want:     Result{Outcome: OutcomeUpToDate},
		counters: Counters{UpToDate: 1},
		running:  9,
	}, {
		name:     "device refuses a rollback",
		events:   []server.Event{refused("dev-01", 9, 8, "rollback")},
		want:     Result{Outcome: OutcomeRefused, Seq: 8, Reason: "rollback"},
		counters: Counters{Refused: 1},
		running:  9,
		refusal:  "refused",
	}, {
		name: "device rejects the image after the transfer",
		events: []server.Event{
			accepted("dev-01", 6, 7, 1000, 0), progress("dev-01", 7, 1000, 1000),
			report("dev-01", 6, 7, 1000, 1000, "digest_mismatch"),
		},
		want:     Result{Outcome: OutcomeVerifyFailed, Seq: 7, Reason: "digest_mismatch"},
		counters: Counters{Transfers: 1, VerifyFailed: 1, BytesSent: 1000},
		running:  6,
		refusal:  "verify_failed",
	}, {
		name: "transfer breaks off, durable offset counts",
		events: []server.Event{
			accepted("dev-01", 6, 7, 1000, 0), progress("dev-01", 7, 1000, 300),
			failed("dev-01", 6, 7, 1000, 450, "timeout"),
		},
		want:     Result{Outcome: OutcomeFailed, Seq: 7, Reason: "timeout"},
		counters: Counters{Transfers: 1, Failed: 1, BytesSent: 450},
		running:  6,
		refusal:  "failed",
	}, {
		name: "resumed transfer counts only the bytes it sent",
		events: []server.Event{
			accepted("dev-01", 6, 7, 1000, 450), progress("dev-01", 7, 1000, 800),
			report("dev-01", 6, 7, 1000, 1000, "ok"),
		},
		want:     Result{Outcome: OutcomeInstalled, Seq: 7, Reason: "ok"},
		counters: Counters{Transfers: 1, Installed: 1, BytesSent: 550},
		running:  6,
	}, {
		name: "image unavailable right after accept",
		events: []server.Event{
			accepted("dev-01", 6, 7, 1000, 0), failed("dev-01", 6, 7, 1000, 0, "unavailable"),
		},
		want:     Result{Outcome: OutcomeFailed, Seq: 7, Reason: "unavailable"},
		counters: Counters{Transfers: 1, Failed: 1},
		running:  6,
		refusal:  "failed",
	}, {
		name: "still streaming",
		events: []server.Event{
			upToDate("dev-01", 6), accepted("dev-01", 6, 7, 1000, 0), progress("dev-01", 7, 1000, 100),
		},
		want:       Result{Outcome: OutcomeUpToDate},
		counters:   Counters{UpToDate: 1, Transfers: 1, BytesSent: 100},
		running:    6,
		inTransfer: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, _, clk := newTestFleet(t, FleetConfig{})
			for _, e := range tt.events {
				f.Record(e)
			}
			d := mustDevice(t, f, "dev-01")
			tt.want.Time = clk.Now()
			if d.LastResult == nil || *d.LastResult != tt.want {
				t.Errorf("result %+v, want %+v", d.LastResult, tt.want)
			}
			if d.Counters != tt.counters {
				t.Errorf("counters %+v, want %+v", d.Counters, tt.counters)
			}
			if d.Running != tt.running {
				t.Errorf("running %d, want %d", d.Running, tt.running)
			}
			if (d.Transfer != nil) != tt.inTransfer {
				t.Errorf("transfer %+v, want one: %v", d.Transfer, tt.inTransfer)
			}
			entries, _ := f.Recent()
			switch {
			case tt.refusal == "" && len(entries) != 0:
				t.Errorf("unexpected ring entries %+v", entries)
			case tt.refusal != "" && (len(entries) != 1 || entries[0].Kind != tt.refusal ||
				entries[0].DeviceID != "dev-01" || entries[0].Reason != tt.want.Reason || entries[0].Remote != remote):
				t.Errorf("ring %+v, want one %q entry for dev-01 with reason %q", entries, tt.refusal, tt.want.Reason)
			}
		})
	}
}

func TestHandshakeFailuresDoNotCreateDevices(t *testing.T) {
	f, m, _, _ := newTestFleet(t, FleetConfig{})
	const n = 10000
	for i := range n {
		f.Record(handshakeFailed(fmt.Sprintf("spray-%05d", i), fmt.Sprintf("198.51.100.%d:1234", i%250), "auth_failed"))
	}
	if got := len(f.Devices()); got != 0 {
		t.Fatalf("%d devices created by unauthenticated IDs", got)
	}
	if _, ok := f.Device("spray-00001"); ok {
		t.Fatal("an unauthenticated ID is known as a device")
	}
	entries, total := f.Recent()
	if len(entries) != defaultRecentSize || total != n {
		t.Fatalf("ring holds %d of %d, want %d of %d", len(entries), total, defaultRecentSize, n)
	}
	if e := entries[0]; e.ClaimedID != "spray-09999" || e.DeviceID != "" || e.Kind != "handshake_failed" || e.Reason != "auth_failed" {
		t.Fatalf("newest entry %+v", e)
	}
	if got := testutil.ToFloat64(m.handshakeFailures.WithLabelValues("auth_failed")); got != n {
		t.Fatalf("handshake failures counted %v, want %d", got, n)
	}
}

func TestUnverifiedInputIsBoundedInTheRing(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	f.Record(handshakeFailed("dev 01\x1b[31m", strings.Repeat("r", 1000), strings.Repeat("x", 1000)))
	f.Record(handshakeFailed(strings.Repeat("a", 17), "", "malformed"))
	entries, _ := f.Recent()
	if len(entries) != 2 {
		t.Fatalf("ring %+v", entries)
	}
	for _, e := range entries {
		if e.ClaimedID != "" {
			t.Errorf("malformed claimed ID kept: %q", e.ClaimedID)
		}
		if len(e.Remote) > maxRemoteLen || len(e.Reason) > maxReasonLen {
			t.Errorf("entry not clipped: remote %d bytes, reason %d bytes", len(e.Remote), len(e.Reason))
		}
	}
}

func TestRecentIsNewestFirstAndBounded(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 7, 9} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f, _, _, _ := newTestFleet(t, FleetConfig{RecentSize: 4})
			for i := range n {
				f.Record(handshakeFailed(fmt.Sprintf("id-%d", i), remote, "auth_failed"))
			}
			entries, total := f.Recent()
			if total != uint64(n) || len(entries) != min(n, 4) {
				t.Fatalf("%d entries of %d, want %d of %d", len(entries), total, min(n, 4), n)
			}
			for i, e := range entries {
				if want := fmt.Sprintf("id-%d", n-1-i); e.ClaimedID != want {
					t.Fatalf("entry %d is %q, want %q (newest first)", i, e.ClaimedID, want)
				}
			}
		})
	}
}

func TestProgressNeverGoesBackwards(t *testing.T) {
	tests := []struct {
		name   string
		events []server.Event
		offset uint32 // want, with a transfer still shown
		sent   uint64
	}{
		{"lower offset", []server.Event{accepted("dev-01", 1, 2, 1000, 0), progress("dev-01", 2, 1000, 600), progress("dev-01", 2, 1000, 200)}, 600, 600},
		{"other image", []server.Event{accepted("dev-01", 1, 2, 1000, 0), progress("dev-01", 2, 1000, 100), progress("dev-01", 3, 1000, 900)}, 100, 100},
		{"past the size", []server.Event{accepted("dev-01", 1, 2, 1000, 0), progress("dev-01", 2, 1000, 5000)}, 1000, 1000},
		{"resume past the size", []server.Event{accepted("dev-01", 1, 2, 1000, 4000), progress("dev-01", 2, 1000, 5000)}, 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, m, _, _ := newTestFleet(t, FleetConfig{})
			for _, e := range tt.events {
				f.Record(e)
			}
			d := mustDevice(t, f, "dev-01")
			if d.Transfer == nil || d.Transfer.Offset != tt.offset || d.Counters.BytesSent != tt.sent {
				t.Fatalf("transfer %+v, bytes %d; want offset %d, bytes %d", d.Transfer, d.Counters.BytesSent, tt.offset, tt.sent)
			}
			if got := testutil.ToFloat64(m.bytesSent); got != float64(tt.sent) {
				t.Fatalf("bytes_sent %v, want %d", got, tt.sent)
			}
		})
	}
}

func TestProgressWithoutTransferCountsNothing(t *testing.T) {
	f, m, _, _ := newTestFleet(t, FleetConfig{})
	f.Record(progress("dev-01", 2, 1000, 600))
	d := mustDevice(t, f, "dev-01") // authenticated, so the device is known
	if d.Transfer != nil || d.Counters.BytesSent != 0 || testutil.ToFloat64(m.bytesSent) != 0 {
		t.Fatalf("progress outside a session counted: %+v", d)
	}
	f.Record(failed("dev-01", 1, 2, 1000, 600, "timeout"))
	f.Record(report("dev-01", 1, 2, 1000, 1000, "ok"))
	if got := testutil.ToFloat64(m.active); got != 0 {
		t.Fatalf("ends without a start moved sessions_active to %v", got)
	}
}

// A device that reconnects while its old session is still timing out: the old session's
// failure must not hide the new transfer nor count bytes twice.
func TestReconnectKeepsNewestTransfer(t *testing.T) {
	f, m, _, _ := newTestFleet(t, FleetConfig{})
	f.Record(accepted("dev-01", 1, 2, 1000, 0))
	f.Record(progress("dev-01", 2, 1000, 300))
	f.Record(accepted("dev-01", 1, 2, 1000, 300)) // the device came back
	f.Record(progress("dev-01", 2, 1000, 700))
	f.Record(failed("dev-01", 1, 2, 1000, 300, "timeout")) // the old session times out
	d := mustDevice(t, f, "dev-01")
	if d.Transfer == nil || d.Transfer.Offset != 700 || d.Transfer.From != 300 {
		t.Fatalf("transfer after the stale failure: %+v", d.Transfer)
	}
	if got := testutil.ToFloat64(m.active); got != 1 {
		t.Fatalf("sessions_active %v, want 1", got)
	}
	f.Record(report("dev-01", 1, 2, 1000, 1000, "ok"))
	d = mustDevice(t, f, "dev-01")
	if d.Transfer != nil || d.Counters.BytesSent != 1000 || d.LastResult.Outcome != OutcomeInstalled {
		t.Fatalf("after the report: %+v", d)
	}
	if got := testutil.ToFloat64(m.active); got != 0 {
		t.Fatalf("sessions_active %v, want 0", got)
	}
}

func TestSnapshotsAreCopies(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	f.Record(refused("dev-01", 1, 2, "rollback"))
	f.Record(accepted("dev-01", 1, 3, 1000, 0))
	d := mustDevice(t, f, "dev-01")
	d.Transfer.Offset = 999
	d.LastResult.Reason = "tampered"
	d.Counters.Refused = 42
	d = mustDevice(t, f, "dev-01")
	if d.Transfer.Offset != 0 || d.LastResult.Reason != "rollback" || d.Counters.Refused != 1 {
		t.Fatalf("a snapshot changed the fleet: %+v", d)
	}
}

func TestDevicesAreSortedAndEncodeAsDocumented(t *testing.T) {
	f, _, _, clk := newTestFleet(t, FleetConfig{})
	for _, id := range []string{"dev-30", "dev-02", "dev-10"} {
		f.Record(upToDate(id, 5))
	}
	clk.Advance(time.Second)
	f.Record(accepted("dev-10", 5, 6, 2000, 0))
	clk.Advance(time.Second)
	f.Record(progress("dev-10", 6, 2000, 500))

	ds := f.Devices()
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	if got := strings.Join(ids, ","); got != "dev-02,dev-10,dev-30" {
		t.Fatalf("order %s", got)
	}
	b, err := json.Marshal(ds[1])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"dev-10","class":"esp8266-a","running":5,"remote":"192.0.2.7:40001","last_seen":"2026-03-01T12:00:02Z",` +
		`"transfer":{"seq":6,"size":2000,"from":0,"offset":500,"started":"2026-03-01T12:00:01Z","updated":"2026-03-01T12:00:02Z","progress":0.25,"bytes_per_second":500},` +
		`"last_result":{"time":"2026-03-01T12:00:00Z","outcome":"up_to_date"},` +
		`"counters":{"transfers":1,"installed":0,"verify_failed":0,"refused":0,"failed":0,"up_to_date":1,"bytes_sent":500}}`
	if string(b) != want {
		t.Fatalf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestUnknownEventKindIsIgnored(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	ch := f.Subscribe(t.Context())
	f.Record(server.Event{Kind: server.EventOffered + 1, DeviceID: "dev-01"})
	f.Record(server.Event{Kind: -1, DeviceID: "dev-02"})
	if n := len(f.Devices()); n != 0 {
		t.Fatalf("unknown kinds created %d devices", n)
	}
	if len(ch) != 0 {
		t.Fatalf("unknown kinds published %d changes", len(ch))
	}
}

func receive(t *testing.T, ch <-chan Change) Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no change arrived")
	}
	panic("unreachable")
}

func TestSubscribeReceivesChangesInOrder(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	ch := f.Subscribe(ctx)

	f.Record(accepted("dev-01", 1, 2, 1000, 0))
	f.Record(progress("dev-01", 2, 1000, 500))
	f.Record(handshakeFailed("dev-99", remote, "auth_failed"))
	f.Record(report("dev-01", 1, 2, 1000, 1000, "bad_signature"))

	c := receive(t, ch)
	if c.Seq != 1 || c.Event != "accepted" || c.Device == nil || c.Device.Transfer == nil || c.Refusal != nil {
		t.Fatalf("change 1: %+v", c)
	}
	c = receive(t, ch)
	if c.Seq != 2 || c.Event != "progress" || c.Device.Transfer.Offset != 500 {
		t.Fatalf("change 2: %+v", c)
	}
	c = receive(t, ch)
	if c.Seq != 3 || c.Event != "handshake_failed" || c.Device != nil || c.Refusal == nil || c.Refusal.ClaimedID != "dev-99" {
		t.Fatalf("change 3: %+v", c)
	}
	c = receive(t, ch)
	if c.Seq != 4 || c.Event != "report" || c.Device.LastResult.Outcome != OutcomeVerifyFailed ||
		c.Refusal == nil || c.Refusal.Kind != "verify_failed" || c.Missed != 0 {
		t.Fatalf("change 4: %+v", c)
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a change after the subscription ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel was not closed when ctx ended")
	}
	f.Record(upToDate("dev-01", 2)) // must not send on the closed channel
}

func TestSlowSubscriberNeverBlocksRecord(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{SubscriberBuffer: 16})
	stalled := f.Subscribe(t.Context()) // never read until the end
	const n = 10000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			f.Record(progress("dev-01", 2, n+1, uint32(i)))
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Record blocked on a subscriber that does not read")
	}
	if len(stalled) != 16 {
		t.Fatalf("subscriber buffer holds %d, want 16", len(stalled))
	}
	for range 16 {
		<-stalled
	}
	f.Record(upToDate("dev-01", 3))
	if c := receive(t, stalled); c.Missed != n-16 || c.Seq != n+1 {
		t.Fatalf("after draining: seq %d, missed %d; want %d, %d", c.Seq, c.Missed, n+1, n-16)
	}
	f.Record(upToDate("dev-01", 3))
	if c := receive(t, stalled); c.Missed != 0 {
		t.Fatalf("missed %d again after a delivered change", c.Missed)
	}
}

func TestConcurrentRecord(t *testing.T) {
	f, m, _, _ := newTestFleet(t, FleetConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := f.Subscribe(ctx)
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		for range changes {
		}
	}()

	const workers, sessions, size = 50, 20, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("dev-%02d", w)
			for s := range sessions {
				f.Record(handshakeFailed(fmt.Sprintf("x-%d-%d", w, s), remote, "auth_failed"))
				f.Record(accepted(id, 1, 2, size, 0))
				for off := uint32(250); off <= size; off += 250 {
					f.Record(progress(id, 2, size, off))
				}
				f.Record(report(id, 1, 2, size, size, "ok"))
			}
		}()
	}
	// Readers race the writers.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			f.Devices()
			f.Recent()
			f.Device("dev-07")
		}
	}()
	wg.Wait()
	cancel()
	drained.Wait()

	ds := f.Devices()
	if len(ds) != workers {
		t.Fatalf("%d devices, want %d", len(ds), workers)
	}
	for _, d := range ds {
		if d.Counters != (Counters{Transfers: sessions, Installed: sessions, BytesSent: sessions * size}) || d.Transfer != nil {
			t.Fatalf("%s: %+v", d.ID, d)
		}
	}
	if got, want := testutil.ToFloat64(m.bytesSent), float64(workers*sessions*size); got != want {
		t.Fatalf("bytes_sent %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(m.sessionsBy[resultInstalled]); got != workers*sessions {
		t.Fatalf("installed sessions %v", got)
	}
	if got := testutil.ToFloat64(m.active); got != 0 {
		t.Fatalf("sessions_active %v after every session ended", got)
	}
	if _, total := f.Recent(); total != workers*sessions {
		t.Fatalf("ring total %d", total)
	}
}

func TestRetryIsRecordedAsRetryNotUpToDate(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	f.Record(server.Event{Kind: server.EventRetry, DeviceID: "dev-01", Class: "c", Running: 3})
	d, ok := f.Device("dev-01")
	if !ok || d.LastResult == nil || d.LastResult.Outcome != OutcomeRetry || d.Running != 3 || d.Counters.UpToDate != 0 {
		t.Fatalf("retry recorded as %+v", d)
	}
}

func TestUpstreamRefusalEntersTheRingAndReachesSubscribers(t *testing.T) {
	f, _, _, clk := newTestFleet(t, FleetConfig{})
	ch := f.Subscribe(t.Context())
	f.Record(accepted("dev-01", 1, 2, 1000, 0))
	clk.Advance(time.Second)
	f.RecordUpstreamRefusal("esp8266-a", "rollback", fmt.Errorf("manifest sequence 3 below the accepted 4"))

	entries, total := f.Recent()
	if total != 1 || len(entries) != 1 {
		t.Fatalf("ring holds %d of %d, want the upstream refusal alone", len(entries), total)
	}
	want := Refusal{Time: clk.Now(), Kind: KindUpstream, Class: "esp8266-a", Reason: "rollback", Error: "manifest sequence 3 below the accepted 4"}
	if entries[0] != want {
		t.Fatalf("entry %+v, want %+v", entries[0], want)
	}
	receive(t, ch) // accepted
	c := receive(t, ch)
	if c.Seq != 2 || c.Event != EventUpstreamRefused || c.Device != nil || c.Refusal == nil || *c.Refusal != want {
		t.Fatalf("change %+v", c)
	}
	if d, _ := f.Device("dev-01"); d.Counters.Refused != 0 || d.Transfer == nil {
		t.Fatalf("an upstream refusal changed a device: %+v", d)
	}
}

func TestUpstreamRefusalLeavesDeviceMetricsAlone(t *testing.T) {
	f, _, reg, _ := newTestFleet(t, FleetConfig{})
	before, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	f.RecordUpstreamRefusal("esp8266-a", "manifest does not verify", nil)
	// Labelled series appear on their first observation: an upstream refusal makes none.
	if after, err := testutil.GatherAndCount(reg); err != nil || after != before {
		t.Fatalf("series %d before, %d after (%v)", before, after, err)
	}
}

func TestUpstreamRefusalIsClippedToValidText(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	long := strings.Repeat("é", maxErrorLen) // two bytes each: a cut may split one
	f.RecordUpstreamRefusal(strings.Repeat("c", 1000), strings.Repeat("r", 1000), fmt.Errorf("x%s", long))
	f.RecordUpstreamRefusal("esp8266-a", "image download failed", nil)
	entries, _ := f.Recent()
	r := entries[1]
	if len(r.Class) > maxClassLen || len(r.Reason) > maxReasonLen || len(r.Error) > maxErrorLen+3 {
		t.Fatalf("not clipped: class %d, reason %d, error %d bytes", len(r.Class), len(r.Reason), len(r.Error))
	}
	if !utf8.ValidString(r.Error) {
		t.Fatal("clipped error is not valid UTF-8")
	}
	if entries[0].Error != "" {
		t.Fatalf("nil error kept as %q", entries[0].Error)
	}
}

func TestSnapshotIsConsistentWithChangeSeq(t *testing.T) {
	f, _, _, _ := newTestFleet(t, FleetConfig{})
	if s := f.Snapshot(); s.Seq != 0 || len(s.Devices) != 0 || len(s.Refusals) != 0 || s.Total != 0 {
		t.Fatalf("empty fleet: %+v", s)
	}
	f.Record(accepted("dev-02", 1, 2, 1000, 0))
	f.Record(handshakeFailed("dev-99", remote, "auth_failed"))
	f.Record(accepted("dev-01", 1, 2, 1000, 0))
	ch := f.Subscribe(t.Context())
	s := f.Snapshot()
	f.Record(progress("dev-01", 2, 1000, 500))
	if s.Seq != 3 || len(s.Devices) != 2 || s.Devices[0].ID != "dev-01" || len(s.Refusals) != 1 || s.Total != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	if c := receive(t, ch); c.Seq != s.Seq+1 {
		t.Fatalf("first change after the snapshot has Seq %d, want %d", c.Seq, s.Seq+1)
	}
}
