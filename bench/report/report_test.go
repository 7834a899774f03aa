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
		"fotagate: measured by the C library's size report",
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
	r.Bound = &Bound{SealMessage: 16 << 10, SealPerCore: 2e9, WriteSize: 256 << 10, TCPPerCore: 5e9, SealAtChunk: map[int]float64{512: 1e9}}
	r.Profiles[0].Emulation = loopbackEmulation
	flash := r.Profiles[0]
	flash.Name, flash.Flash, flash.Base, flash.FlashSeconds = "loopback+flash", true, "loopback", map[int]float64{512: 14.8, 2048: 14.8}
	r.Profiles = append(r.Profiles, flash)
	r.Sweep = []SweepStep{{Devices: 10, ImageSize: 1 << 20, Chunk: 1024, Goodput: 1e8, CPUmsPerMiB: 5,
		Base: GatewayMemory{Heap: 1 << 20}, Held: GatewayMemory{Heap: 2 << 20, Sessions: 10}}}
	for i := range r.Profiles[0].Cells {
		for j := range r.Profiles[0].Cells[i].Samples {
			r.Profiles[0].Cells[i].Samples[j].BytesOut = 2 << 20
			r.Profiles[0].Cells[i].Samples[j].DownRatio = 2
		}
	}
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
	for _, want := range []string{"## Flash timing on loopback", "### Physical bound", "## Concurrency sweep", "| fotagate | 100.00 % |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the JSON round trip lost %q", want)
		}
	}
}

func TestReadJSONDerivesTheDownlinkOfOlderRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.json")
	// A run from before down_ratio: bytes_out is there, the ratio is not.
	old := `{"image_size": 1000, "chunks": [512], "profiles": [{"name": "loopback", "cells": [{"peer": "fotagate", "chunk": 512,
		"samples": [{"seconds": 1, "goodput": 1000, "bytes_out": 1040, "bytes_in": 20, "wire_ratio": 1.06}]}]}]}`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Profiles[0].Cells[0].Summary(); s.DownRatio != 1.04 {
		t.Fatalf("down ratio %v, want 1.04", s.DownRatio)
	}
}

func TestARenderedReportSaysItWasDrawnAgain(t *testing.T) {
	r := results()
	var a strings.Builder
	r.Markdown(&a, nil)
	if strings.Contains(a.String(), "Rendered again") {
		t.Fatal("a fresh run claims to be rendered again")
	}
	r.Rendered, r.RenderedAt = "fotabench --render r.json", time.Unix(3600, 0).UTC()
	var b strings.Builder
	r.Markdown(&b, nil)
	if !strings.Contains(b.String(), "Rendered again from that run's JSON by `fotabench --render r.json` on 1970-01-01 01:00 UTC") {
		t.Fatal("a rendered report does not say so")
	}
}

// On a link with a round trip, time to first byte is also counted in its round trips, the
// unit of the target (at most 2.5 for fotagate; HTTPS needs 3).
func TestHandshakeTableCountsFirstByteInRoundTripsOfTheLink(t *testing.T) {
	r := results()
	r.Profiles[0].Name, r.Profiles[0].RTT = "2mbit-50ms", 0.050
	for i := range r.Profiles[0].Cells {
		for j := range r.Profiles[0].Cells[i].Samples {
			r.Profiles[0].Cells[i].Samples[j].FirstByte = 0.104
		}
	}
	var b bytes.Buffer
	r.Markdown(&b, nil)
	md := b.String()
	for _, want := range []string{"time to first byte (round trips of 50 ms) |", "| fotagate | 77 | 99 | 3 | 0.104 | 2.08 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	b.Reset()
	results().Markdown(&b, nil) // loopback: no round trips to count in
	if strings.Contains(b.String(), "round trips of") {
		t.Error("a loopback profile counts first byte in round trips")
	}
}
