package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPerSessionSubtractsTheBaseAndDividesBySessions(t *testing.T) {
	base := GatewayMemory{RSS: 10 << 20, Heap: 1 << 20, Stacks: 64 << 10}
	held := GatewayMemory{RSS: 10<<20 + 100*8192, Heap: 1<<20 + 100*3000, Stacks: 64<<10 + 100*2048, Sessions: 100}
	rss, hs := held.PerSession(base)
	if rss != 8192 || hs != 5048 {
		t.Fatalf("per session rss %v heap+stacks %v, want 8192 and 5048", rss, hs)
	}
	if r, h := (GatewayMemory{RSS: 1 << 30}).PerSession(base); r != 0 || h != 0 {
		t.Fatal("a per-session figure without sessions")
	}
}

func TestSweepFailuresNameFailedSessionsAndBrokenSteps(t *testing.T) {
	f := SweepFailures([]SweepStep{{Devices: 1}, {Devices: 10, Failed: 2, Errors: []string{"device 3: reset"}}, {Devices: 100, Error: "gateway exited"}})
	if len(f) != 2 || !strings.Contains(f[0], "10 devices: 2 failed sessions (device 3: reset)") || !strings.Contains(f[1], "gateway exited") {
		t.Fatalf("failures %q", f)
	}
}

func TestSweepSectionAndChart(t *testing.T) {
	r := results()
	base := GatewayMemory{RSS: 8 << 20, Heap: 400 << 10, Stacks: 64 << 10, Goroutines: 4}
	for _, n := range []int{1, 10, 100} {
		r.Sweep = append(r.Sweep, SweepStep{Devices: n, ImageSize: 1 << 20, Chunk: 1024, Goodput: float64(n) * 1e6,
			TTFBP50: 0.002, TTFBP99: 0.004, ConnectSeconds: 0.1, DataSeconds: 1, Base: base,
			Idle:        GatewayMemory{RSS: base.RSS + int64(n)*4096, Heap: base.Heap + int64(n)*1000, Stacks: base.Stacks + int64(n)*1048, Sessions: n},
			Held:        GatewayMemory{RSS: base.RSS + int64(n)*40960, Heap: base.Heap + int64(n)*20000, Stacks: base.Stacks + int64(n)*4096, Goroutines: 4 + 2*n, Sessions: n},
			CPUmsPerMiB: 10})
	}
	r.Bound = &Bound{SealPerCore: 419430400, TCPPerCore: 419430400} // both: 209,715,200 B/s; 10 ms/MiB is half of it
	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	for _, want := range []string{"## Concurrency sweep", "| 100 | 1 MiB | 0 | 100 | 2.0 / 4.0 | 2,048 / 4,096 | 24,096 / 40,960 | 2.0 | 10.0 | 0.50 |",
		"![gateway memory and goodput vs devices](charts/sweep.svg)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	for _, name := range []string{"charts/sweep.png", "charts/sweep.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v", name, err)
		}
	}
}
