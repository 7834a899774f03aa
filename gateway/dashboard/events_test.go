package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/gateway/admin"
)

func TestFeedDeliversAChangeWithinAFlush(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	d.fleet.Record(accepted("dev-1", 4000))
	seq := d.fleet.Snapshot().Seq
	feed := d.openFeed(t, d.since(seq), bearerHeader(testToken))

	start := time.Now()
	d.fleet.Record(progressed("dev-1", 4000, 3000))
	ev := feed.await(t, "update", 2*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("change took %v to arrive", took)
	}
	var m updateMsg
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Devices) != 1 || m.Devices[0].ID != "dev-1" || !strings.Contains(m.Devices[0].HTML, `<progress value="3000" max="4000"`) {
		t.Fatalf("update %+v", m)
	}
	if ev.ID != d.eventID(seq+1) {
		t.Errorf("event id %q, want the change's Seq %d", ev.ID, seq+1)
	}
}

func TestFeedStartsWithASnapshotOnlyWhenThePageIsBehind(t *testing.T) {
	d := newDash(t, admin.TokenAuth(testToken), testConfig())
	d.fleet.Record(accepted("dev-1", 4000))
	d.fleet.Record(handshakeFailed("dev-2", "192.0.2.1:1", "auth_failed"))
	seq := d.fleet.Snapshot().Seq

	for _, tc := range []struct {
		name     string
		query    string
		hdr      http.Header
		snapshot bool
	}{
		{"no since", "", nil, true},
		{"page behind", "?since=EPOCH-1", nil, true},
		{"page current", "?since=EPOCH-SEQ", nil, false},
		{"page current, before a restart", "?since=0ld3poch-SEQ", nil, true},
		{"page without epoch", "?since=SEQ", nil, true},
		{"reconnect current", "?since=EPOCH-0", http.Header{"Last-Event-ID": {"EPOCH-SEQ"}}, false},
		{"reconnect behind", "?since=EPOCH-SEQ", http.Header{"Last-Event-ID": {"EPOCH-1"}}, true},
	} {
		// SEQ is the fleet's Seq now: the page (or the last event) shows everything.
		now := strings.NewReplacer("EPOCH", d.epoch, "SEQ", fmt.Sprint(seq))
		hdr := bearerHeader(testToken)
		for k, v := range tc.hdr {
			hdr[k] = []string{now.Replace(v[0])}
		}
		feed := d.openFeed(t, now.Replace(tc.query), hdr)
		d.fleet.Record(progressed("dev-1", 4000, 100)) // then an update follows either way
		ev := feed.next(t, 5*time.Second)
		if got := ev.Name == "snapshot"; got != tc.snapshot {
			t.Errorf("%s: first event %q, snapshot %v, want %v", tc.name, ev.Name, got, tc.snapshot)
		}
		if ev.Name == "snapshot" {
			var m snapshotMsg
			if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.Devices, `id="dev-dev-1"`) || !strings.Contains(m.Refusals, "claims dev-2") || m.Total != 1 {
				t.Errorf("%s: snapshot %+v", tc.name, m)
			}
		}
		feed.close()
		seq = d.fleet.Snapshot().Seq
	}
}

// fakeFleet lets a test write the changes a subscriber sees.
type fakeFleet struct {
	snap    admin.Snapshot
	changes chan admin.Change
	ended   chan struct{}
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{changes: make(chan admin.Change, 1024), ended: make(chan struct{}, 64)}
}

func (f *fakeFleet) Snapshot() admin.Snapshot { return f.snap }

func (f *fakeFleet) Subscribe(ctx context.Context) <-chan admin.Change {
	out := make(chan admin.Change)
	go func() {
		defer func() { f.ended <- struct{}{} }()
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-f.changes:
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func newFakeDash(t *testing.T, f *fakeFleet, cfg config) *dash {
	t.Helper()
	h := newHandler(testSources(f), admin.AllowAnonymous(), zaptest.NewLogger(t), cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &dash{handler: h, srv: srv}
}

func deviceChange(seq uint64, id string, off uint32) admin.Change {
	return admin.Change{Seq: seq, Event: "progress", Device: &admin.Device{ID: id, Class: "esp8266-4m",
		Transfer: &admin.Transfer{Seq: 7, Size: 1000, Offset: off, Progress: float64(off) / 1000}}}
}

func TestFeedReloadsThePageAfterMissedChanges(t *testing.T) {
	f := newFakeFleet()
	d := newFakeDash(t, f, testConfig())
	feed := d.openFeed(t, d.since(0), nil)

	f.changes <- deviceChange(1, "dev-1", 100)
	if ev := feed.await(t, "update", 5*time.Second); !strings.Contains(ev.Data, "dev-1") {
		t.Fatalf("update %s", ev.Data)
	}
	f.snap = admin.Snapshot{Seq: 9, Devices: []admin.Device{{ID: "dev-from-snapshot"}}}
	c := deviceChange(9, "dev-1", 900)
	c.Missed = 7
	f.changes <- c
	ev := feed.await(t, "snapshot", 5*time.Second)
	if ev.ID != d.eventID(9) || !strings.Contains(ev.Data, "dev-from-snapshot") {
		t.Fatalf("after missed changes: %+v", ev)
	}
}

func TestFeedCoalescesAndFallsBackToASnapshot(t *testing.T) {
	f := newFakeFleet()
	cfg := testConfig()
	cfg.flushEvery = 300 * time.Millisecond
	cfg.maxRefusals = 3
	d := newFakeDash(t, f, cfg)
	feed := d.openFeed(t, d.since(0), nil)

	// Many progress changes of one device within a flush: one row, the newest.
	for i := range 50 {
		f.changes <- deviceChange(uint64(i+1), "dev-1", uint32(i*10))
	}
	ev := feed.await(t, "update", 5*time.Second)
	var m updateMsg
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Devices) != 1 || !strings.Contains(m.Devices[0].HTML, `value="490"`) || ev.ID != d.eventID(50) {
		t.Fatalf("coalesced update: id %s, %+v", ev.ID, m)
	}

	// More refusals than a flush may carry: a snapshot instead.
	f.snap = admin.Snapshot{Seq: 60, Total: 10}
	for i := range 10 {
		f.changes <- admin.Change{Seq: uint64(51 + i), Event: "handshake_failed",
			Refusal: &admin.Refusal{Kind: "handshake_failed", Reason: "auth_failed"}}
	}
	if ev := feed.await(t, "snapshot", 5*time.Second); ev.ID != d.eventID(60) {
		t.Fatalf("snapshot id %q", ev.ID)
	}
}

func TestFeedSendsHeartbeats(t *testing.T) {
	f := newFakeFleet()
	cfg := testConfig()
	cfg.heartbeat = 50 * time.Millisecond
	d := newFakeDash(t, f, cfg)
	feed := d.openFeed(t, d.since(0), nil)
	// The first beat carries the upstream panel (it was never sent); later ones are pings
	// while it reads the same.
	if ev := feed.next(t, 2*time.Second); ev.Name != "upstream" || !strings.Contains(ev.Data, "updates.vendor.example") {
		t.Fatalf("first beat %+v", ev)
	}
	if ev := feed.next(t, 2*time.Second); ev.Comment != "ping" {
		t.Fatalf("second beat %+v", ev)
	}
}

func TestFeedCapsConcurrentClients(t *testing.T) {
	f := newFakeFleet()
	cfg := testConfig()
	cfg.maxClients = 3
	d := newFakeDash(t, f, cfg)
	var open []*sse
	for range cfg.maxClients {
		feed := d.openFeed(t, d.since(0), nil)
		open = append(open, feed)
	}
	_, resp := d.tryFeed(t, d.since(0), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("client over the cap: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	// A page that leaves frees its slot.
	open[0].close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		feed, resp := d.tryFeed(t, d.since(0), nil)
		if resp.StatusCode == http.StatusOK {
			break
		}
		feed.close()
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed feed was not freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFeedEndsWhenTheClientLeaves(t *testing.T) {
	f := newFakeFleet()
	d := newFakeDash(t, f, testConfig())
	feed := d.openFeed(t, d.since(0), nil)
	feed.close()
	select {
	case <-f.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription outlived the client")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(d.clients) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the handler outlived the client")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFeedOutlivesTheServerReadTimeout(t *testing.T) {
	f := admin.NewFleet(admin.FleetConfig{}, nil)
	h := newHandler(testSources(f), admin.AllowAnonymous(), zaptest.NewLogger(t), testConfig())
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = 200 * time.Millisecond // the daemon sets 30 s
	srv.Start()
	t.Cleanup(srv.Close)
	d := &dash{handler: h, fleet: f, srv: srv}

	feed := d.openFeed(t, d.since(0), nil)
	time.Sleep(4 * srv.Config.ReadTimeout)
	f.Record(accepted("dev-1", 1000))
	if ev := feed.await(t, "update", 5*time.Second); !strings.Contains(ev.Data, "dev-1") {
		t.Fatalf("update %s", ev.Data)
	}
}
