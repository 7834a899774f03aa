package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/bench/report"
)

func TestSweepAtATinySizeHoldsEveryDeviceAndLosesNone(t *testing.T) {
	p := Plan{Sweep: []int{1, 6}, SweepImage: 20<<10 + 3, Seed: 4, NoBound: true}
	var progress strings.Builder
	p.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, p)
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if f := report.SweepFailures(res.Sweep); len(f) > 0 || len(res.Sweep) != 2 {
		t.Fatalf("%d steps, failures %q", len(res.Sweep), f)
	}
	for _, s := range res.Sweep {
		// Every device is a live session in the gateway at both samples: connected and silent,
		// then held after its first frame.
		if s.Idle.Sessions != s.Devices || s.Held.Sessions != s.Devices {
			t.Errorf("%d devices: the gateway held %d idle and %d streaming sessions", s.Devices, s.Idle.Sessions, s.Held.Sessions)
		}
		if s.Held.Goroutines <= s.Base.Goroutines || s.Held.RSS <= 0 || s.Base.Heap <= 0 {
			t.Errorf("%d devices: implausible memory %+v over %+v", s.Devices, s.Held, s.Base)
		}
		if s.TTFBP50 <= 0 || s.TTFBP99 < s.TTFBP50 || s.Goodput <= 0 || s.CPUmsPerMiB <= 0 || s.ImageSize != 20<<10+3 {
			t.Errorf("%d devices: implausible step %+v", s.Devices, s)
		}
	}
}

func TestSweepCountsEveryDeviceTheGatewayRefused(t *testing.T) {
	p := Plan{Sweep: []int{3}, SweepImage: 8 << 10, Seed: 4, sweepKey: 1, NoBound: true}
	res, err := Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Sweep[0]
	if s.Error != "" || s.Failed != 3 || len(s.Errors) == 0 {
		t.Fatalf("step %+v: want 3 failed sessions with their reasons", s)
	}
	if f := report.SweepFailures(res.Sweep); len(f) != 1 || !strings.Contains(f[0], "3 failed sessions") {
		t.Fatalf("failures %q", f)
	}
}

func TestSweepImageSizeKeepsAStepSmall(t *testing.T) {
	for n, want := range map[int]int{1: 1 << 20, 10: 1 << 20, 100: 1 << 20, 1000: 256 << 10, 10000: 32 << 10, 1 << 20: 4 << 10} {
		if got := SweepImageSize(n); got != want {
			t.Errorf("SweepImageSize(%d) = %d, want %d", n, got, want)
		}
		if n <= 10000 && n*SweepImageSize(n) > sweepTotalBytes {
			t.Errorf("%d devices move %d bytes", n, n*SweepImageSize(n))
		}
	}
}

func TestPercentileIsTheNearestRank(t *testing.T) {
	var ts []time.Duration
	for i := 1; i <= 200; i++ {
		ts = append(ts, time.Duration(i))
	}
	if p50, p99 := percentile(ts, 0.5), percentile(ts, 0.99); p50 != 100 || p99 != 198 {
		t.Fatalf("p50 %d p99 %d", p50, p99)
	}
	if percentile(ts[:1], 0.99) != 1 {
		t.Fatal("one sample")
	}
}
