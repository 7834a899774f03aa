package harness

import (
	"fmt"
	"time"

	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
	"github.com/fotagate/fotagate/bench/report"
)

// SmokePlan is `fotabench --smoke`: every peer once on loopback with 512-byte chunks and a
// 128 KiB image, and a concurrency sweep of one small step. It takes a few seconds; it exists
// to fail when a peer or the sweep stops working.
func SmokePlan() Plan {
	return Plan{
		Profiles:  []link.Profile{link.Profiles[0]},
		Peers:     peers.All(),
		Chunks:    []int{512},
		ImageSize: 128 << 10,
		Seed:      1,
		Reps:      1,
		Timeout:   30 * time.Second,
		Smoke:     true,
		// Ten devices at once against one gateway: the concurrency sweep's children and
		// accounting, in a fraction of a second.
		Sweep:      []int{10},
		SweepImage: 16 << 10,
	}
}

// Failures lists what should fail a run: every cell that ended in an error, in a smoke run
// every cell that has no sample at all (a smoke chunk size that a peer cannot use is a
// broken smoke), and every sweep step that failed or lost a session.
func Failures(r *report.Results) []string {
	var out []string
	for _, p := range r.Profiles {
		for _, c := range p.Cells {
			switch {
			case c.Error != "":
				out = append(out, fmt.Sprintf("%s %s %d B: %s", p.Name, c.Peer, c.Chunk, c.Error))
			case r.Smoke && len(c.Samples) == 0:
				out = append(out, fmt.Sprintf("%s %s %d B: no transfer (%s)", p.Name, c.Peer, c.Chunk, c.NA))
			}
		}
	}
	return append(out, report.SweepFailures(r.Sweep)...)
}
