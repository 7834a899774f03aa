package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample(goodput, cpu float64) Sample {
	return Sample{Seconds: 1e6 / goodput, Goodput: goodput, WireRatio: 1.05, CPUmsPerMiB: cpu, HandshakeIn: 77, HandshakeOut: 99, RoundTrips: 3}
}

func results() *Results {
	return &Results{
		Command: "fotabench --test", Started: time.Unix(0, 0).UTC(), Finished: time.Unix(90, 0).UTC(),
		ImageSize: 1 << 20, ImageSHA256: strings.Repeat("ab", 32), Reps: 3, Chunks: []int{512, 2048},
		Peers: []PeerInfo{
			{Name: "fotagate", Network: "tcp", RAM: []RAM{{512, 531, "frame"}, {2048, 2067, "frame"}}},
			{Name: "coap-dtls", Network: "udp", RAM: []RAM{{512, 564, "datagram"}, {2048, 2100, "datagram"}}},
		},
		Profiles: []Profile{{Name: "loopback", Description: "loopback", Cells: []Cell{
			{Peer: "fotagate", Chunk: 512, Samples: []Sample{sample(100e3, 9), sample(300e3, 30), sample(200e3, 10)}},
			{Peer: "fotagate", Chunk: 2048, Samples: []Sample{sample(400e3, 5)}},
			{Peer: "coap-dtls", Chunk: 512, Samples: []Sample{sample(10e3, 300), sample(20e3, 500)}},
			{Peer: "coap-dtls", Chunk: 2048, NA: "Block2 sizes are 16..1024 bytes"},
		}}},
	}
}

func TestSummaryTakesTheMedianOfEachFigure(t *testing.T) {
	c, _ := results().Profiles[0].Cell("fotagate", 512)
	s, ok := c.Summary()
	if !ok || s.N != 3 || s.Goodput != 200e3 || s.CPUmsPerMiB != 10 {
		t.Fatalf("summary %+v, want goodput 200 and CPU 10 from three samples", s)
	}
	c, _ = results().Profiles[0].Cell("coap-dtls", 512)
	if s, _ := c.Summary(); s.Goodput != 15e3 {
		t.Fatalf("median of two samples %v, want their mean 15", s.Goodput)
	}
	if _, ok := (Cell{NA: "x"}).Summary(); ok {
		t.Fatal("a cell without samples has a summary")
	}
}

func TestMarkdownShowsEveryCellTheRatiosAndWhyACellIsMissing(t *testing.T) {
	var b bytes.Buffer
	results().Markdown(&b, nil)
	md := b.String()
	for _, want := range []string{
		"`fotabench --test`",
		"| fotagate | 200 | 400 |",                // goodput medians in KB/s
		"| coap-dtls | 15.0 | n/a [1] |",          // the mean of the middle two
		"1. coap-dtls: Block2 sizes are 16..1024", // the footnote says why
		"| coap-dtls | goodput | 13.33 | |",       // 200 / 15
		"| fotagate | 531 | 2,067 | frame |",      // computed RAM
		"computed from documented constants, not measured",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	if strings.Contains(md, "IP overhead") {
		t.Error("an IP table without any IP counts")
	}
}

func TestWriteFilesDrawsEveryChartAsPNGAndSVG(t *testing.T) {
	dir := t.TempDir()
	if err := results().WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"RESULTS.md", "charts/goodput-loopback.png", "charts/goodput-loopback.svg",
		"charts/overhead-loopback.svg", "charts/cpu-loopback.png"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "RESULTS.md"))
	if !strings.Contains(string(md), "![goodput on loopback](charts/goodput-loopback.svg)") {
		t.Error("RESULTS.md does not show the goodput chart")
	}
}

func TestResultsSurviveAJSONRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	r := results()
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	r.Markdown(&a, nil)
	got.Markdown(&b, nil)
	if a.String() != b.String() {
		t.Fatal("results read back from JSON render differently")
	}
}
