package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
)

func TestEmulatedProfilesSideBySideKeepThePlansOrderAndEveryCell(t *testing.T) {
	// Three emulated links through the loopback proxies (no root needed) and loopback, which
	// runs alone first: the results must still be in the plan's order, every cell measured.
	p := Plan{Peers: []peers.Peer{peers.TCP{}, peers.CoAP{}}, Chunks: []int{1024}, ImageSize: 64 << 10, Seed: 4, Reps: 1,
		Timeout: time.Minute, Link: LinkProxy, Parallel: 2, NoBound: true, PrefixBlocks: 16}
	for _, name := range []string{"test-a", "test-b"} {
		p.Profiles = append(p.Profiles, link.Profile{Name: name, RTT: 2 * time.Millisecond})
	}
	p.Profiles = append(p.Profiles, link.Profiles[0], link.Profile{Name: "test-c", RTT: 2 * time.Millisecond})
	var progress strings.Builder
	p.Progress = &progress
	res, err := Run(context.Background(), p)
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if f := Failures(res); len(f) > 0 {
		t.Fatal(f)
	}
	if len(res.Profiles) != len(p.Profiles) || res.Parallel != 2 {
		t.Fatalf("%d profiles for %d planned, parallel %d", len(res.Profiles), len(p.Profiles), res.Parallel)
	}
	for i, pr := range res.Profiles {
		if pr.Name != p.Profiles[i].Name || len(pr.Cells) != 2 || len(pr.Cells[0].Samples) != 1 || len(pr.Cells[1].Samples) != 1 {
			t.Errorf("profile %d: %s with cells %+v, want %s with one sample per peer", i, pr.Name, pr.Cells, p.Profiles[i].Name)
		}
	}
	// Loopback ran before any emulated link: its header comes first.
	if i, j := strings.Index(progress.String(), "== loopback"), strings.Index(progress.String(), "== test-"); i < 0 || j < i {
		t.Errorf("loopback did not run first:\n%s", progress.String())
	}
}
