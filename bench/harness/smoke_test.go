package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/bench/report"
)

// TestMain lets the harness re-execute this test binary as its children.
func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(ChildMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestSmokeRunsEveryPeerAndDeliversTheImage(t *testing.T) {
	p := SmokePlan()
	p.Command = "go test ./bench/harness"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := mustRun(t, ctx, p)
	if len(res.Sweep) != 1 || res.Sweep[0].Held.Sessions != 10 {
		t.Fatalf("smoke sweep %+v: want one step holding 10 sessions", res.Sweep)
	}
	if n := len(res.Profiles[0].Cells); n != len(p.Peers) {
		t.Fatalf("%d cells for %d peers", n, len(p.Peers))
	}
	for _, c := range res.Profiles[0].Cells {
		s := c.Samples[0]
		if s.BytesOut < int64(p.ImageSize) || s.WireRatio < 1 || s.RoundTrips < 1 || s.CPUSeconds <= 0 {
			t.Errorf("%s: implausible sample %+v", c.Peer, s)
		}
	}
}

func TestSmokeFailsWhenADeviceGetsADifferentImage(t *testing.T) {
	p := SmokePlan()
	// fotagate and fotagate-c: the Go device and the C device, whose slot file the fetch
	// child reads back.
	p.Peers, p.Sweep = p.Peers[:2], nil
	if p.Peers[1].Name() != "fotagate-c" {
		t.Fatalf("second peer %s, want fotagate-c", p.Peers[1].Name())
	}
	// The device derives the image from the seed; a server that serves another image must be
	// caught by the device's digest check, whatever the protocol says.
	res, err := Run(context.Background(), withServerSeed(p, 99))
	if err != nil {
		t.Fatal(err)
	}
	f := Failures(res)
	if len(f) != 2 {
		t.Fatalf("failures %q, want one per peer about the image", f)
	}
	for _, s := range f {
		if !strings.Contains(s, "differs") && !strings.Contains(s, "digest") {
			t.Errorf("failure %q, want one about the image", s)
		}
	}
}

func withServerSeed(p Plan, seed uint64) Plan {
	p.serverSeed = seed
	return p
}

// mustRun runs p with its progress in the test's log and fails the test if the run cannot
// go on or any cell failed.
func mustRun(t *testing.T, ctx context.Context, p Plan) *report.Results {
	t.Helper()
	var progress strings.Builder
	p.Progress = &progress
	res, err := Run(ctx, p)
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if f := Failures(res); len(f) > 0 {
		t.Fatalf("run failed:\n%s", strings.Join(f, "\n"))
	}
	return res
}
