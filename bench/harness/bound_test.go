package harness

import (
	"testing"

	"github.com/fotagate/fotagate/bench/report"
)

func TestMeasureBoundGivesEveryFigureAndTheirCombination(t *testing.T) {
	b, err := MeasureBound([]int{64, 4096})
	if err != nil {
		t.Fatal(err)
	}
	if b.SealPerCore <= 0 || b.TCPPerCore <= 0 || b.SealAtChunk[64] <= 0 || b.SealAtChunk[4096] <= 0 || b.ReaderCPUShare <= 0 {
		t.Fatalf("bound %+v: a figure is missing", b)
	}
	// Doing both jobs to every byte is slower than either alone.
	if c := b.Combined(); c >= b.SealPerCore || c >= b.TCPPerCore || c != report.CombinePerCore(b.SealPerCore, b.TCPPerCore) {
		t.Fatalf("combined %g from seal %g and tcp %g", c, b.SealPerCore, b.TCPPerCore)
	}
}
