package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPrefixCellsAreMarkedInEveryTableAndTheRatios(t *testing.T) {
	r := results()
	cells := r.Profiles[0].Cells
	for i := range cells {
		if cells[i].Peer == "coap-dtls" && cells[i].Chunk == 512 {
			cells[i].Prefix = 128 << 10
			for j := range cells[i].Samples {
				cells[i].Samples[j].Delivered, cells[i].Samples[j].MeasuredSeconds = 128<<10, 13.4
			}
		}
	}
	r.TimeBudget, r.Estimate, r.Reduced, r.Parallel = 25*time.Minute, 24*time.Minute, 17, 4
	var b bytes.Buffer
	r.Markdown(&b, nil)
	md := b.String()
	note := "coap-dtls at 512 B: measured over the first 128 KiB of the 1 MiB image"
	if !strings.Contains(md, note) || !strings.Contains(md, "Prefix cells (marked") {
		t.Fatalf("no prefix note or method line:\n%s", md)
	}
	var marked, dagger int
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "| coap-dtls | ") && strings.Contains(line, " [2] |"):
			marked++ // [1] is the n/a note of 2048 B, [2] the prefix
		case strings.HasPrefix(line, "| fotagate | ") && strings.Contains(line, "["):
			t.Errorf("a whole-image cell is marked: %s", line)
		case strings.HasPrefix(line, "| coap-dtls | ") && strings.Contains(line, "†"):
			dagger++
		}
	}
	// Goodput, time, wire, downlink, CPU: every table of the cell.
	if marked < 5 || dagger != 2 {
		t.Errorf("prefix mark in %d tables (want 5 or more) and in %d ratio rows (want 2):\n%s", marked, dagger, md)
	}
	for _, want := range []string{"time budget of 25m0s (estimated 24m0s)", "17 slow cell(s)", "up to 4 emulated links side by side"} {
		if !strings.Contains(md, want) {
			t.Errorf("method does not say %q", want)
		}
	}

	// Whole-image results say nothing of prefixes.
	b.Reset()
	results().Markdown(&b, nil)
	if strings.Contains(b.String(), "measured over the first") || strings.Contains(b.String(), "†") || strings.Contains(b.String(), "Prefix cells") {
		t.Errorf("whole-image results mention a prefix:\n%s", b.String())
	}
}
