package harness

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
)

func TestATinyBudgetStopsTheStopAndWaitDeviceAndMarksItsCell(t *testing.T) {
	// An emulated link through the loopback proxies (no root needed): 4 ms round trip.
	prof := link.Profile{Name: "test-4ms", RTT: 4 * time.Millisecond}
	p := Plan{Profiles: []link.Profile{prof}, Peers: []peers.Peer{peers.Fotagate{}, peers.CoAP{}}, Chunks: []int{512},
		ImageSize: 256 << 10, Seed: 3, Reps: 2, Timeout: time.Minute, Link: LinkProxy, PrefixBlocks: 8}
	res := mustRun(t, context.Background(), p)
	const budget = 8 * 512
	for _, c := range res.Profiles[0].Cells {
		if len(c.Samples) != p.Reps {
			t.Fatalf("%s: %d samples, want %d", c.Peer, len(c.Samples), p.Reps)
		}
		for _, s := range c.Samples {
			switch c.Peer {
			case "coap-dtls":
				// Stopped at the budget: the server sent about the prefix, figures are per byte
				// delivered, the time is scaled to the whole image.
				if c.Prefix != budget || s.Delivered != budget || s.MeasuredSeconds <= 0 {
					t.Fatalf("coap cell prefix %d, sample delivered %d in %.3f s; want %d", c.Prefix, s.Delivered, s.MeasuredSeconds, budget)
				}
				if s.BytesOut > 4*budget || s.WireRatio < 1 || s.WireRatio > 2 {
					t.Errorf("server sent %d bytes, wire ratio %.2f for a %d-byte prefix", s.BytesOut, s.WireRatio, budget)
				}
				// The first block's time once, the other 7 blocks' time scaled to 511 blocks.
				want := s.FirstByte + (s.MeasuredSeconds-s.FirstByte)*float64(p.ImageSize-512)/(budget-512)
				if s.FirstByte <= 0 || s.Seconds < want*0.999 || s.Seconds > want*1.001 {
					t.Errorf("time %.3f s (first byte %.3f s), want the prefix's %.3f s scaled to %.3f s", s.Seconds, s.FirstByte, s.MeasuredSeconds, want)
				}
				if g := float64(p.ImageSize) / s.Seconds; s.Goodput < g*0.999 || s.Goodput > g*1.001 {
					t.Errorf("goodput %.0f B/s, want the image over the scaled time, %.0f", s.Goodput, g)
				}
				// Wire: the handshake once, the data phase scaled: far below the prefix's own ratio.
				own := float64(s.BytesIn+s.BytesOut) / budget
				if s.WireRatio >= own || s.WireRatio < float64(s.BytesOut-s.HandshakeOut)/budget {
					t.Errorf("wire ratio %.3f; the prefix's own is %.3f", s.WireRatio, own)
				}
			default:
				// A streaming peer is never cut short: its whole image, unmarked.
				if c.Prefix != 0 || s.Delivered != 0 || s.MeasuredSeconds != 0 || s.BytesOut < int64(p.ImageSize) {
					t.Fatalf("%s: prefix %d, delivered %d, sent %d: want the whole image", c.Peer, c.Prefix, s.Delivered, s.BytesOut)
				}
			}
		}
	}
	var md bytes.Buffer
	res.Markdown(&md, nil)
	if n := strings.Count(md.String(), "measured over the first 4 KiB of the 256 KiB image"); n != 1 {
		t.Errorf("the prefix note appears %d times, want once:\n%s", n, md.String())
	}
	for _, line := range strings.Split(md.String(), "\n") {
		if strings.HasPrefix(line, "| fotagate | ") && strings.Contains(line, "[") {
			t.Errorf("fotagate's full transfers carry a note: %s", line)
		}
	}
}
