package report

import (
	"fmt"
	"slices"
)

// RecommendTolerance is how much goodput a smaller chunk may give up and still be
// recommended: each halving of the chunk halves the device's frame buffer, and a few percent
// of a transfer's time is worth that much RAM on an 80 KB device.
const RecommendTolerance = 0.05

// Recommendation is the chunk size advised for one peer on one link profile.
type Recommendation struct {
	Profile     string
	Peer        string
	Chunk       int     // the recommended chunk
	Goodput     float64 // its median goodput, bytes/s
	Best        int     // the chunk with the best goodput
	BestGoodput float64
	RAM         int // device RAM at Chunk; 0 when not known
	BestRAM     int // device RAM at Best; 0 when not known
	Reason      string
}

// Recommend picks the smallest chunk of peer on prof whose median goodput is within
// tolerance of the best chunk's: smaller chunks mean less device RAM. ram gives the device
// RAM at a chunk (0 when unknown). ok is false when the peer has no measured cell there.
func Recommend(prof Profile, peer string, tolerance float64, ram func(chunk int) int) (rec Recommendation, ok bool) {
	type point struct {
		chunk   int
		goodput float64
	}
	var pts []point
	for _, c := range prof.Cells {
		if c.Peer != peer || c.Error != "" {
			continue
		}
		if s, ok := c.Summary(); ok && s.Goodput > 0 {
			pts = append(pts, point{c.Chunk, s.Goodput})
		}
	}
	if len(pts) == 0 {
		return rec, false
	}
	slices.SortFunc(pts, func(a, b point) int { return a.chunk - b.chunk })
	best := pts[0]
	for _, p := range pts {
		if p.goodput > best.goodput {
			best = p
		}
	}
	pick := best
	for _, p := range pts { // ascending: the first within tolerance is the smallest
		if p.goodput >= (1-tolerance)*best.goodput {
			pick = p
			break
		}
	}
	rec = Recommendation{Profile: prof.Name, Peer: peer, Chunk: pick.chunk, Goodput: pick.goodput,
		Best: best.chunk, BestGoodput: best.goodput}
	if ram != nil {
		rec.RAM, rec.BestRAM = ram(pick.chunk), ram(best.chunk)
	}
	var skipped string
	if i := slices.IndexFunc(pts, func(p point) bool { return p.chunk == pick.chunk }); i > 0 {
		below := pts[i-1]
		skipped = fmt.Sprintf(" %d B, the next smaller, reaches %s KB/s (%.2fx the best): below the %.0f %% line.",
			below.chunk, num(below.goodput/1000), below.goodput/best.goodput, tolerance*100)
	} else {
		skipped = " It is the smallest chunk measured."
	}
	if pick.chunk == best.chunk {
		rec.Reason = fmt.Sprintf("%d B has the best goodput, %s KB/s.%s", best.chunk, num(best.goodput/1000), skipped)
	} else {
		rec.Reason = fmt.Sprintf("best goodput %s KB/s at %d B; %d B reaches %s KB/s (%.2fx), within %.0f %% of it.%s",
			num(best.goodput/1000), best.chunk, pick.chunk, num(pick.goodput/1000), pick.goodput/best.goodput, tolerance*100, skipped)
	}
	if rec.RAM > 0 && rec.BestRAM > 0 && pick.chunk != best.chunk {
		rec.Reason += fmt.Sprintf(" Device RAM: %s B instead of %s B.", grouped(rec.RAM), grouped(rec.BestRAM))
	} else if rec.RAM > 0 {
		rec.Reason += fmt.Sprintf(" Device RAM: %s B.", grouped(rec.RAM))
	}
	return rec, true
}
