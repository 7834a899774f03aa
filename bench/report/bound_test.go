package report

import (
	"math"
	"strings"
	"testing"
)

func TestCombinePerCoreAddsTheTimePerByte(t *testing.T) {
	for _, tc := range []struct{ a, b, want float64 }{
		{2e9, 2e9, 1e9},    // two equal jobs halve the rate
		{1e9, 3e9, 0.75e9}, // 1 ns + 1/3 ns per byte
		{1e9, math.Inf(1), 1e9},
		{0, 1e9, 0}, // an unknown rate gives no bound, not the other rate
		{1e9, -1, 0},
	} {
		if got := CombinePerCore(tc.a, tc.b); math.Abs(got-tc.want) > 1e-6*math.Max(tc.want, 1) {
			t.Errorf("CombinePerCore(%g, %g) = %g, want %g", tc.a, tc.b, got, tc.want)
		}
	}
	b := Bound{SealPerCore: 1e9, TCPPerCore: 3e9}
	if b.Combined() != CombinePerCore(1e9, 3e9) {
		t.Error("Bound.Combined is not CombinePerCore of its figures")
	}
}

func TestBoundFractionIsGoodputPerServerCPUSecondOverTheBound(t *testing.T) {
	// 10 ms of CPU per MiB is 104,857,600 B per CPU-second.
	s := Summary{CPUmsPerMiB: 10}
	if got := BoundFraction(s, 104857600); math.Abs(got-1) > 1e-9 {
		t.Errorf("fraction %v, want 1", got)
	}
	if got := BoundFraction(s, 209715200); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("fraction %v, want 0.5", got)
	}
	if BoundFraction(Summary{}, 1e8) != 0 || BoundFraction(s, 0) != 0 {
		t.Error("a fraction without a CPU figure or a bound")
	}
}

func TestMarkdownShowsTheBoundOnLoopbackOnly(t *testing.T) {
	r := results()
	r.Profiles[0].Emulation = loopbackEmulation
	r.Bound = &Bound{SealMessage: 16 << 10, SealPerCore: 1048576000, WriteSize: 256 << 10, TCPPerCore: 1048576000,
		SealAtChunk: map[int]float64{512: 524288000}}
	r.Profiles = append(r.Profiles, Profile{Name: "2mbit-50ms", Description: "slow", Emulation: "netns", Cells: r.Profiles[0].Cells})
	var b strings.Builder
	r.Markdown(&b, nil)
	md := b.String()
	// Bound 524,288,000 B/s; fotagate at 512 B: median CPU 10 ms/MiB = 104,857,600 B/s = 0.20.
	for _, want := range []string{"### Physical bound of one core", "| 1,049 MB/s | 1,049 MB/s | 524 MB/s |", "| fotagate | 0.20 | 0.40 |",
		"| *Seal alone at the chunk size, fraction of the bound* | *1.00* | |"} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	if n := strings.Count(md, "### Physical bound"); n != 1 {
		t.Errorf("the bound appears %d times, want once (loopback only)", n)
	}
}
