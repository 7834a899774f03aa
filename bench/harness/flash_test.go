package harness

import (
	"context"
	"testing"
	"time"

	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
)

func TestFlashProfileMakesEveryDeviceTakeAtLeastTheFlashTime(t *testing.T) {
	prof, err := link.Lookup("loopback+flash")
	if err != nil {
		t.Fatal(err)
	}
	p := Plan{Profiles: []link.Profile{prof}, Peers: []peers.Peer{peers.Fotagate{}, peers.FotagateC{}, peers.TCP{}}, Chunks: []int{4096},
		ImageSize: 64 << 10, Seed: 2, Reps: 1, Timeout: time.Minute}
	res := mustRun(t, context.Background(), p)
	pr := res.Profiles[0]
	floor := peers.FlashTime(p.ImageSize, 4096)
	if !pr.Flash || pr.Base != "loopback" || pr.FlashSeconds[4096] != floor.Seconds() {
		t.Fatalf("profile %+v", pr)
	}
	for _, c := range pr.Cells {
		// A lower bound only: a loaded machine may take longer, never shorter.
		if s := c.Samples[0]; s.Seconds < floor.Seconds() {
			t.Errorf("%s delivered in %.3f s, under the flash's %v", c.Peer, s.Seconds, floor)
		}
	}
}
