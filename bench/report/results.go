package report

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Results is one run of the bench.
type Results struct {
	Command string `json:"command"`
	// Rendered is the command that drew RESULTS.md again from this run's JSON, if one did,
	// and RenderedAt when.
	Rendered    string    `json:"rendered,omitempty"`
	RenderedAt  time.Time `json:"rendered_at,omitzero"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Machine     Machine   `json:"machine"`
	Smoke       bool      `json:"smoke"`
	ImageSize   int       `json:"image_size"`
	ImageSHA256 string    `json:"image_sha256"`
	Seed        uint64    `json:"seed"`
	Reps        int       `json:"reps"`
	// TimeBudget, when the run had one, is what its plan had to fit in; Estimate what the
	// plan was expected to take; Reduced how many cells the budget gave fewer than Reps
	// transfers (the slowest first).
	TimeBudget time.Duration `json:"time_budget_ns,omitempty"`
	Estimate   time.Duration `json:"estimate_ns,omitempty"`
	Reduced    int           `json:"reps_reduced,omitempty"`
	// Parallel, above 1, is how many emulated links ran side by side (loopback ran alone).
	Parallel int        `json:"parallel,omitempty"`
	Chunks   []int      `json:"chunks"`
	Peers    []PeerInfo `json:"peers"`
	Profiles []Profile  `json:"profiles"`
	// Bound is the loopback physical bound, measured in the run when it has a loopback profile.
	Bound *Bound `json:"bound,omitempty"`
	// Sweep is the concurrency sweep, when the run had one.
	Sweep []SweepStep `json:"sweep,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go_version"`
	OSArch    string  `json:"os_arch"`
}

// PeerInfo describes a peer and its computed device RAM per chunk size.
type PeerInfo struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	About   string `json:"about"`
	RAM     []RAM  `json:"device_ram"`
}

// RAM is a computed (not measured) device RAM figure.
type RAM struct {
	Chunk int    `json:"chunk"`
	Bytes int    `json:"bytes"`
	How   string `json:"how"`
}

// Profile is every cell measured on one link profile.
type Profile struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Emulation   string  `json:"emulation"` // how the link was made
	Loss        float64 `json:"loss"`      // probability of a packet loss each way
	// RTT is the round trip the link adds, seconds (0 on loopback): the unit for time to
	// first byte on an emulated link.
	RTT float64 `json:"rtt,omitempty"`
	// Flash is true when the devices wrote to a flash with the ESP8266's timing; Base is then
	// the name of the same link without it.
	Flash bool   `json:"flash,omitempty"`
	Base  string `json:"base,omitempty"`
	// FlashSeconds is the flash model's time for the image writes alone, by chunk size.
	FlashSeconds map[int]float64 `json:"flash_seconds,omitempty"`
	Cells        []Cell          `json:"cells"`
}

// Cell is one peer at one chunk size on one profile.
type Cell struct {
	Peer  string `json:"peer"`
	Chunk int    `json:"chunk"`
	NA    string `json:"na,omitempty"` // why the peer cannot use this chunk size
	// Prefix, when set, is the transfer budget in image bytes: the device (a stop-and-wait
	// peer on an emulated link) stopped after it, and every sample holds figures over the part
	// delivered, with the time for the whole image extrapolated (Sample.Delivered).
	Prefix  int      `json:"prefix,omitempty"`
	Error   string   `json:"error,omitempty"` // what went wrong; samples before it are kept
	Samples []Sample `json:"samples,omitempty"`
}

// Sample is one transfer.
type Sample struct {
	Seconds float64 `json:"seconds"` // device: from before the dial to the last image byte
	// Delivered, when set, is the image bytes of a transfer that stopped at its cell's Prefix
	// budget, and MeasuredSeconds the device's time to them; 0: the whole image. BytesIn and
	// BytesOut are then the prefix's. Seconds, Goodput, WireRatio and DownRatio are for the
	// whole image: the handshake and the first block once, every further block at the
	// prefix's average (one block per round trip: each costs the same). CPUmsPerMiB and
	// IP.Ratio are per byte delivered, the handshake's share included.
	Delivered       int64   `json:"delivered,omitempty"`
	MeasuredSeconds float64 `json:"measured_seconds,omitempty"`
	FirstByte       float64 `json:"first_byte"` // device: to the first image byte; 0 if not observable
	Goodput         float64 `json:"goodput"`    // image bytes per second
	// Server side, transport payload bytes (TCP stream, UDP datagrams), both ways.
	BytesIn      int64   `json:"bytes_in"`
	BytesOut     int64   `json:"bytes_out"`
	WireRatio    float64 `json:"wire_ratio"` // (in + out) / image bytes
	DownRatio    float64 `json:"down_ratio"` // out / image bytes: the downlink alone
	HandshakeIn  int64   `json:"handshake_in"`
	HandshakeOut int64   `json:"handshake_out"`
	RoundTrips   int     `json:"round_trips"` // before the first image byte, TCP connect included
	Writes       int64   `json:"writes"`
	MaxWrite     int64   `json:"max_write"`
	CPUSeconds   float64 `json:"cpu_seconds"` // server process user + system
	CPUmsPerMiB  float64 `json:"cpu_ms_per_mib"`
	ServerRSS    int64   `json:"server_max_rss"`
	// IP level, on emulated links that see packets (Netns): every packet both ways.
	IP *IPCounts `json:"ip,omitempty"`
}

// IPCounts is what the emulated link carried during one transfer.
type IPCounts struct {
	UpPackets, UpBytes     int64
	DownPackets, DownBytes int64
	Dropped                int64
	Ratio                  float64 // (up + down bytes) / image bytes
}

// Summary is the median of each figure over a cell's samples.
type Summary struct {
	N                                      int
	Seconds, FirstByte, Goodput, WireRatio float64
	DownRatio                              float64 // gateway → device bytes / image bytes
	HandshakeIn, HandshakeOut              int64
	RoundTrips                             int
	CPUmsPerMiB, IPRatio, IPDropped        float64
	MaxWrite                               int64
	HasIP                                  bool
	// Prefix is the median image bytes delivered when the cell's transfers stopped at a
	// budget (Cell.Prefix); 0 when they delivered the whole image.
	Prefix int64
}

// Summary returns the medians; ok is false when the cell has no samples.
func (c Cell) Summary() (s Summary, ok bool) {
	if len(c.Samples) == 0 {
		return s, false
	}
	f := func(get func(Sample) float64) float64 {
		v := make([]float64, len(c.Samples))
		for i, x := range c.Samples {
			v[i] = get(x)
		}
		return median(v)
	}
	s.N = len(c.Samples)
	s.Seconds = f(func(x Sample) float64 { return x.Seconds })
	s.FirstByte = f(func(x Sample) float64 { return x.FirstByte })
	s.Goodput = f(func(x Sample) float64 { return x.Goodput })
	s.WireRatio = f(func(x Sample) float64 { return x.WireRatio })
	s.DownRatio = f(func(x Sample) float64 { return x.DownRatio })
	s.HandshakeIn = int64(f(func(x Sample) float64 { return float64(x.HandshakeIn) }))
	s.HandshakeOut = int64(f(func(x Sample) float64 { return float64(x.HandshakeOut) }))
	s.RoundTrips = int(f(func(x Sample) float64 { return float64(x.RoundTrips) }))
	s.CPUmsPerMiB = f(func(x Sample) float64 { return x.CPUmsPerMiB })
	s.MaxWrite = int64(f(func(x Sample) float64 { return float64(x.MaxWrite) }))
	if c.Prefix > 0 {
		s.Prefix = int64(f(func(x Sample) float64 { return float64(x.Delivered) }))
	}
	if c.Samples[0].IP != nil {
		s.HasIP = true
		s.IPRatio = f(func(x Sample) float64 {
			if x.IP == nil {
				return 0
			}
			return x.IP.Ratio
		})
		s.IPDropped = f(func(x Sample) float64 {
			if x.IP == nil {
				return 0
			}
			return float64(x.IP.Dropped)
		})
	}
	return s, true
}

// median of v (the mean of the middle two for an even count); v is reordered.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// Cell finds a cell of a profile.
func (p Profile) Cell(peer string, chunk int) (Cell, bool) {
	for _, c := range p.Cells {
		if c.Peer == peer && c.Chunk == chunk {
			return c, true
		}
	}
	return Cell{}, false
}

// WriteJSON writes the results, indented, to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads results written by WriteJSON, to render them again.
func ReadJSON(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Runs from before the downlink figure existed kept the bytes it comes from.
	for i := range r.Profiles {
		for j := range r.Profiles[i].Cells {
			for k := range r.Profiles[i].Cells[j].Samples {
				if s := &r.Profiles[i].Cells[j].Samples[k]; s.DownRatio == 0 && s.BytesOut > 0 && r.ImageSize > 0 {
					s.DownRatio = float64(s.BytesOut) / float64(r.ImageSize)
				}
			}
		}
	}
	return &r, nil
}
