package report

import (
	"fmt"
	"io"
	"strings"
)

// SweepStep is one step of the concurrency sweep: Devices simulated devices against one
// gateway process (the real gateway/server), all at once.
type SweepStep struct {
	Devices   int `json:"devices"`
	ImageSize int `json:"image_size"` // bytes per device
	Chunk     int `json:"chunk"`
	// Failed counts devices whose session did not deliver the image intact; Errors holds the
	// first few reasons.
	Failed int      `json:"failed"`
	Errors []string `json:"errors,omitempty"`
	// Error is set when the step itself could not run (a child failed to start, a timeout).
	Error string `json:"error,omitempty"`
	// ConnectSeconds: from the first dial until every device had its first data byte.
	// DataSeconds: from the release of the held devices until the last one was done.
	ConnectSeconds float64 `json:"connect_seconds"`
	DataSeconds    float64 `json:"data_seconds"`
	// Goodput is every device's image bytes over ConnectSeconds + DataSeconds, bytes/s.
	Goodput float64 `json:"goodput"`
	// Time to first data byte per device, seconds: connect + handshake + first frame.
	TTFBP50 float64 `json:"ttfb_p50"`
	TTFBP99 float64 `json:"ttfb_p99"`
	// Gateway memory: Base before any device, Idle with every device connected and silent
	// (the gateway waits for its Hello), Held with every session past its first data byte.
	Base GatewayMemory `json:"base"`
	Idle GatewayMemory `json:"idle"`
	Held GatewayMemory `json:"held"`
	// CPUmsPerMiB is the gateway's CPU over the whole step per MiB delivered.
	CPUmsPerMiB float64 `json:"cpu_ms_per_mib"`
}

// GatewayMemory is one sample of the gateway process, taken after a forced GC.
type GatewayMemory struct {
	RSS        int64   `json:"rss"`         // resident set, bytes (/proc/self/statm)
	Heap       int64   `json:"heap"`        // live heap after GC (HeapAlloc)
	Stacks     int64   `json:"stacks"`      // goroutine stacks (StackInuse)
	Goroutines int     `json:"goroutines"`  //
	Sessions   int     `json:"sessions"`    // connections the gateway was serving
	CPUSeconds float64 `json:"cpu_seconds"` // process user + system so far, less the samples' own forced GCs
}

// PerSession is (m - base) / sessions for RSS and for heap + stacks; 0 without sessions.
func (m GatewayMemory) PerSession(base GatewayMemory) (rss, heapStacks float64) {
	if m.Sessions <= 0 {
		return 0, 0
	}
	n := float64(m.Sessions)
	return float64(m.RSS-base.RSS) / n, float64(m.Heap+m.Stacks-base.Heap-base.Stacks) / n
}

// SweepFailures lists the sweep's failures: a step that could not run, or any failed session.
func SweepFailures(steps []SweepStep) []string {
	var out []string
	for _, s := range steps {
		switch {
		case s.Error != "":
			out = append(out, fmt.Sprintf("sweep %d devices: %s", s.Devices, s.Error))
		case s.Failed > 0:
			out = append(out, fmt.Sprintf("sweep %d devices: %d failed sessions (%s)", s.Devices, s.Failed, strings.Join(s.Errors, "; ")))
		}
	}
	return out
}

func (r *Results) sweep(w io.Writer, chart string) {
	if len(r.Sweep) == 0 {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Concurrency sweep: devices against one gateway\n\n")
	p("The real gateway/server in one child process on loopback, the devices (protocol.DeviceConn, %d B chunks, an Ack every "+
		"devicelib.DefaultAckEvery) in another; each step starts a fresh gateway. Every device connects (at most 256 dials in flight, "+
		"from 16 loopback source addresses) and stays silent until all are connected: the gateway's memory then is its **idle** figure. "+
		"Then every device shakes hands, reads its first data frame and stops reading: the **held** figure, every session live with its keys, "+
		"its write buffer and its goroutines, the gateway blocked in a write or waiting for the Report. Then all read to the end, verify the "+
		"image's SHA-256 and report. Per session = (sample - the gateway's sample before any device) / sessions, after a forced GC. "+
		"Time to first byte is the device's dial plus its handshake to the first data byte (the idle pause excluded).\n\n", r.Sweep[0].Chunk)
	bound := 0.0
	if r.Bound != nil {
		bound = r.Bound.Combined()
	}
	p("| devices | image per device | failed | goodput, all devices (MB/s) | time to first byte p50 / p99 (ms) | idle: heap+stacks / RSS per session (B) | held: heap+stacks / RSS per session (B) | goroutines per held session | gateway CPU (ms per MiB) | gateway goodput per CPU-second / bound | connect + data (s) |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Sweep {
		if s.Error != "" {
			p("| %s | %s | error: %s | | | | | | | | |\n", grouped(s.Devices), sizeString(s.ImageSize), s.Error)
			continue
		}
		irss, iheap := s.Idle.PerSession(s.Base)
		hrss, hheap := s.Held.PerSession(s.Base)
		gor := 0.0
		if s.Held.Sessions > 0 {
			gor = float64(s.Held.Goroutines-s.Base.Goroutines) / float64(s.Held.Sessions)
		}
		frac := ""
		if f := BoundFraction(Summary{CPUmsPerMiB: s.CPUmsPerMiB}, bound); f > 0 {
			frac = fmt.Sprintf("%.2f", f)
		}
		p("| %s | %s | %d | %s | %.1f / %.1f | %s / %s | %s / %s | %.1f | %s | %s | %.2f + %.2f |\n",
			grouped(s.Devices), sizeString(s.ImageSize), s.Failed, num(s.Goodput/1e6), s.TTFBP50*1000, s.TTFBP99*1000,
			grouped(int(iheap)), grouped(int(irss)), grouped(int(hheap)), grouped(int(hrss)), gor, num(s.CPUmsPerMiB), frac,
			s.ConnectSeconds, s.DataSeconds)
	}
	p("\n")
	if chart != "" {
		p("![gateway memory and goodput vs devices](charts/%s)\n\n", chart)
	}
	if bound > 0 {
		p("Gateway goodput per CPU-second / bound: image bytes delivered per second of the gateway process's CPU over the whole step "+
			"(handshakes and GC included; the memory samples' own forced GCs left out), as a fraction of the one-core physical bound measured in this run "+
			"(%s MB/s; see the loopback section). ", num(bound/1e6))
	}
	p("Image per device shrinks with the step (at most 320 MiB in all) so the 10,000 step finishes in minutes; goodput therefore " +
		"includes more handshakes per MiB at the larger steps. RSS per session is noisy at the small steps (the runtime grows its heap in " +
		"whole arenas); heap + stacks is the figure to compare.\n\n")
}
