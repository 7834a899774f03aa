package report

import (
	"strings"
	"testing"
)

func profileOf(goodput map[int]float64) Profile {
	p := Profile{Name: "2mbit-50ms"}
	for c, g := range goodput {
		p.Cells = append(p.Cells, Cell{Peer: "fotagate", Chunk: c, Samples: []Sample{{Goodput: g}}})
	}
	return p
}

func TestRecommendPicksTheSmallestChunkWithinToleranceOfTheBest(t *testing.T) {
	ram := func(c int) int { return c + 808 }
	for _, tc := range []struct {
		name     string
		goodput  map[int]float64
		want     int
		best     int
		contains []string
	}{
		{"slow link: 512 within 5 %", map[int]float64{64: 180e3, 128: 204e3, 256: 217e3, 512: 223e3, 1024: 225e3, 4096: 232e3}, 512, 4096,
			[]string{"best goodput 232 KB/s at 4096 B", "512 B reaches 223 KB/s (0.96x)", "256 B, the next smaller, reaches 217 KB/s (0.94x the best)", "Device RAM: 1,320 B instead of 4,904 B."}},
		{"exactly 5 % below counts", map[int]float64{64: 95, 128: 100}, 64, 128, []string{"It is the smallest chunk measured."}},
		{"the best is the smallest", map[int]float64{64: 300, 128: 200, 256: 100}, 64, 64, []string{"64 B has the best goodput"}},
		{"loopback: only the largest", map[int]float64{512: 40e6, 1024: 60e6, 2048: 59e6, 4096: 55e6}, 1024, 1024,
			[]string{"1024 B has the best goodput", "512 B, the next smaller, reaches 40,000 KB/s (0.67x the best)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, ok := Recommend(profileOf(tc.goodput), "fotagate", 0.05, ram)
			if !ok || rec.Chunk != tc.want || rec.Best != tc.best {
				t.Fatalf("recommended %d (best %d, ok %v), want %d (best %d)", rec.Chunk, rec.Best, ok, tc.want, tc.best)
			}
			if rec.RAM != ram(tc.want) {
				t.Errorf("RAM %d, want %d", rec.RAM, ram(tc.want))
			}
			for _, s := range tc.contains {
				if !strings.Contains(rec.Reason, s) {
					t.Errorf("reason %q lacks %q", rec.Reason, s)
				}
			}
		})
	}
}

func TestRecommendIgnoresFailedAndMissingCells(t *testing.T) {
	p := profileOf(map[int]float64{512: 100, 1024: 101})
	// A failed cell's samples (before the failure) are not a basis for advice.
	p.Cells = append(p.Cells, Cell{Peer: "fotagate", Chunk: 64, Error: "boom", Samples: []Sample{{Goodput: 1000}}},
		Cell{Peer: "fotagate", Chunk: 128, NA: "unsupported"}, Cell{Peer: "tcp", Chunk: 64, Samples: []Sample{{Goodput: 1e9}}})
	rec, ok := Recommend(p, "fotagate", 0.05, nil)
	if !ok || rec.Chunk != 512 || rec.Best != 1024 || rec.RAM != 0 {
		t.Fatalf("%+v, want 512 of best 1024 and no RAM", rec)
	}
	if _, ok := Recommend(p, "https", 0.05, nil); ok {
		t.Fatal("a recommendation for a peer without cells")
	}
}

func TestMarkdownPrintsARecommendationPerProfile(t *testing.T) {
	var b strings.Builder
	results().Markdown(&b, nil)
	md := b.String()
	// fotagate on loopback: 200 KB/s at 512 B, 400 at 2048 B: 2048 B, RAM from the peer info.
	if !strings.Contains(md, "## Recommended chunk size per link profile") ||
		!strings.Contains(md, "| loopback | 2048 B | 400 | 2,067 | 2048 B has the best goodput") {
		t.Errorf("no recommendation row in:\n%s", md)
	}
}
