package harness

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
)

// The time a plan takes is estimated from the profiles' parameters, not measured: enough to
// print at the start how long a run will be and to fit a run into a time budget by giving
// the slowest cells fewer transfers. The constants come from the 2-core CI machine
// (bench/results.json of 2026-11-25: 2mbit-50ms within 5 % for every cell; a small lossy
// run within 10 %).
const (
	// perTransfer is what a transfer costs beyond its own time: starting the device child
	// (in a namespace), reading its line, the session record.
	perTransfer = 250 * time.Millisecond
	// perServer is starting a server child and its warm-up transfer beside it.
	perServer = 1500 * time.Millisecond
	// perProfile is building and tearing down an emulated link.
	perProfile = 2 * time.Second
	// boundTime is measuring the physical bound (best of three of seal and TCP).
	boundTime = 10 * time.Second
	// linkFactor is IP and TCP headers and ACKs over the image on a shaped link (TCP: 52 B
	// per 1448 B segment plus the ACKs sharing the uplink).
	linkFactor = 1.05
	// lossFactor is what 1 % loss costs a streaming TCP transfer on a 50 ms, 2 Mbit/s link:
	// fast retransmits and the odd timeout (measured 1.0 to 1.24, 2026-11-25).
	lossFactor = 1.15
	// coapPerBlock is the CoAP device's and server's work per block beyond the link (timers,
	// DTLS records, the relay): loopback moves a 64 B block in about 0.25 ms, a 50 ms link
	// in 53 ms.
	coapPerBlock = 1500 * time.Microsecond
	// coapHeaders is a CoAP block's datagram beyond the block: DTLS record 29 B, CoAP header,
	// token and options about 23 B, IP and UDP 28 B.
	coapHeaders = 80
	// coapLossCost is what a lost CoAP datagram costs: ACK_TIMEOUT of 2 s times a random
	// factor up to 1.5 (RFC 7252).
	coapLossCost = 2500 * time.Millisecond
	// stateSaveEvery and stateSave: a fotagate device's durable progress every 32 KiB costs
	// an erase and a page with flash timing on.
	stateSaveEvery = 32 << 10
	stateSave      = 46 * time.Millisecond
	// sweepPerStep and sweepPerDevice: a step's children, and each device's share of a step.
	sweepPerStep   = 3 * time.Second
	sweepPerDevice = 1500 * time.Microsecond
)

// frameOverhead is the bytes each chunk adds on the wire for peers that frame every chunk:
// fotagate's frame header and tag, a TLS 1.3 record's header, type and tag. Peers not named
// stream the image as it is (plain TCP, HTTPS with 16 KiB records).
var frameOverhead = map[string]int{"fotagate": 19, "fotagate-c": 19, "https-rec": 22}

// transferTime estimates one transfer of size bytes (the prefix, for a prefix cell).
func transferTime(prof link.Profile, peer peers.Peer, chunk, size int) time.Duration {
	blocks := (size + chunk - 1) / chunk
	var flash time.Duration
	if prof.Flash {
		flash = peers.FlashTime(size, chunk)
		if peer.Name() == "fotagate" || peer.Name() == "fotagate-c" {
			flash += time.Duration(size/stateSaveEvery) * stateSave
		}
	}
	bits := func(n int) time.Duration {
		if prof.Rate == 0 {
			return 0
		}
		return time.Duration(float64(n) * 8 / float64(prof.Rate) * float64(time.Second))
	}
	if peers.IsStopAndWait(peer) {
		// One round trip per block, one way each for the request and the block; the flash
		// write waits in line with the link.
		per := prof.RTT + bits(chunk+coapHeaders) + bits(coapHeaders) + coapPerBlock
		if !prof.Emulated() {
			per = coapPerBlock / 6
		}
		t := time.Duration(blocks)*per + 3*prof.RTT + flash
		lost := 1 - (1-prof.Loss)*(1-prof.Loss) // per exchange: the request or the block
		return t + time.Duration(float64(blocks)*lost*float64(coapLossCost))
	}
	wire := float64(size) * (1 + float64(frameOverhead[peer.Name()])/float64(chunk))
	if !prof.Emulated() {
		// Loopback is CPU-bound at tens of MB/s: small next to the transfer's own costs.
		return max(50*time.Millisecond, flash)
	}
	onLink := time.Duration(float64(bits(int(wire))) * linkFactor)
	if prof.Loss > 0 {
		onLink = time.Duration(float64(onLink) * lossFactor)
	}
	// The socket buffers let the link run on while the device writes to flash: whichever is
	// slower bounds the transfer.
	return max(onLink, flash) + 2*prof.RTT
}

// cellKey names a cell of a plan.
type cellKey struct {
	profile string
	peer    string
	chunk   int
}

// cellPlan is what the run does for one cell: its prefix budget (0: the whole image), its
// transfers and the estimate of one.
type cellPlan struct {
	budget int
	reps   int
	each   time.Duration
}

// Estimate is a plan's expected run time and what fitting it into Plan.TimeBudget did.
type Estimate struct {
	Total    time.Duration
	Profiles []ProfileEstimate
	Sweep    time.Duration
	Reduced  int // cells given fewer than Plan.Reps transfers
	cells    map[cellKey]cellPlan
}

// ProfileEstimate is one profile's share of an Estimate.
type ProfileEstimate struct {
	Name string
	Time time.Duration
}

// prefixBudget is the bytes a cell's device stops after: PrefixBlocks whole blocks, for a
// stop-and-wait peer on an emulated link only (loopback is CPU-bound and quick: there the
// whole image shows the per-byte work), and only when that is less than the image.
func (p Plan) prefixBudget(prof link.Profile, peer peers.Peer, chunk int) int {
	if p.PrefixBlocks <= 0 || !prof.Emulated() || !peers.IsStopAndWait(peer) {
		return 0
	}
	if b := p.PrefixBlocks * chunk; b < p.ImageSize {
		return b
	}
	return 0
}

// Estimate plans every cell: its prefix budget and its number of transfers. Without a
// TimeBudget every cell gets Reps; with one, the cells with the slowest transfers lose one
// transfer each, slowest first, pass after pass (never their last), until the estimate fits
// or nothing is left to take.
func (p Plan) Estimate() Estimate {
	reps := max(p.Reps, 1)
	maxRep := p.MaxRepTime
	if maxRep == 0 {
		maxRep = defaultMaxRepTime
	}
	e := Estimate{cells: map[cellKey]cellPlan{}}
	var keys []cellKey
	fixed := map[string]time.Duration{}
	boundDone := false
	for _, prof := range p.Profiles {
		if prof.Emulated() {
			fixed[prof.Name] += perProfile
		} else if !prof.Flash && !boundDone && !p.Smoke && !p.NoBound {
			fixed[prof.Name] += boundTime
			boundDone = true
		}
		for _, peer := range p.Peers {
			runs := false
			for _, c := range p.Chunks {
				if peer.Check(c) != nil {
					continue
				}
				runs = true
				b := p.prefixBudget(prof, peer, c)
				size := p.ImageSize
				if b > 0 {
					size = b
				}
				k := cellKey{prof.Name, peer.Name(), c}
				tt := transferTime(prof, peer, c, size)
				n := reps
				if tt > maxRep {
					n = 1 // the run will not repeat it either
				}
				e.cells[k] = cellPlan{budget: b, reps: n, each: tt + perTransfer + prof.RTT}
				keys = append(keys, k)
			}
			if runs {
				fixed[prof.Name] += perServer
			}
		}
	}
	if len(p.Sweep) > 0 {
		if !boundDone && !p.Smoke && !p.NoBound {
			e.Sweep += boundTime
		}
		for _, n := range p.Sweep {
			e.Sweep += sweepPerStep + time.Duration(n)*sweepPerDevice
		}
	}
	emulated := map[string]bool{}
	nEmulated := 0
	for _, prof := range p.Profiles {
		if prof.Emulated() && p.Parallel > 1 {
			emulated[prof.Name] = true
			nEmulated++
		}
	}
	lanes := min(p.Parallel, nEmulated)
	profTime := func(name string) time.Duration {
		t := fixed[name]
		for k, c := range e.cells {
			if k.profile == name {
				t += time.Duration(c.reps) * c.each
			}
		}
		return t
	}
	// total is the wall time: profiles that run alone one after the other, then the emulated
	// ones side by side (no shorter than the longest, nor than their sum over the lanes).
	longest := func() (string, time.Duration, time.Duration) {
		var name string
		var top, sum time.Duration
		for _, prof := range p.Profiles {
			if !emulated[prof.Name] {
				continue
			}
			t := profTime(prof.Name)
			sum += t
			if t > top {
				name, top = prof.Name, t
			}
		}
		return name, top, sum
	}
	total := func() time.Duration {
		t := e.Sweep
		for _, prof := range p.Profiles {
			if !emulated[prof.Name] {
				t += profTime(prof.Name)
			}
		}
		if lanes > 0 {
			_, top, sum := longest()
			t += max(top, sum/time.Duration(lanes))
		}
		return t
	}
	if p.TimeBudget > 0 {
		// Slowest first; ties in plan order, so the result does not depend on map order. Each
		// pass takes one transfer from a cell at a time until the estimate fits, so the slow
		// cells go from 3 to 2 before any goes to 1. Side by side, only cells that shorten the
		// wall time count: those of the longest profile, unless the lanes are the bound.
		order := slices.Clone(keys)
		slices.SortStableFunc(order, func(a, b cellKey) int { return int(e.cells[b].each - e.cells[a].each) })
		for pass := reps; pass > 1 && total() > p.TimeBudget; pass-- {
			for total() > p.TimeBudget {
				name, top, sum := longest()
				cut := false
				for _, k := range order {
					c := e.cells[k]
					if c.reps != pass || emulated[k.profile] && k.profile != name && top*time.Duration(lanes) > sum {
						continue
					}
					c.reps--
					e.cells[k], cut = c, true
					break
				}
				if !cut {
					break
				}
			}
		}
		for _, c := range e.cells {
			if c.reps < reps && c.each-perTransfer <= maxRep {
				e.Reduced++
			}
		}
	}
	for _, prof := range p.Profiles {
		e.Profiles = append(e.Profiles, ProfileEstimate{prof.Name, profTime(prof.Name)})
	}
	e.Total = total()
	return e
}

// cell is the plan of one cell; a cell the estimate did not see gets the plan's defaults.
func (e Estimate) cell(p Plan, prof link.Profile, peer peers.Peer, chunk int) cellPlan {
	if c, ok := e.cells[cellKey{prof.Name, peer.Name(), chunk}]; ok {
		return c
	}
	return cellPlan{budget: p.prefixBudget(prof, peer, chunk), reps: max(p.Reps, 1)}
}

// String is the estimate for the terminal, one line.
func (e Estimate) String() string {
	var parts []string
	for _, pr := range e.Profiles {
		parts = append(parts, fmt.Sprintf("%s %v", pr.Name, roundMinute(pr.Time)))
	}
	if e.Sweep > 0 {
		parts = append(parts, fmt.Sprintf("sweep %v", roundMinute(e.Sweep)))
	}
	return fmt.Sprintf("%v of wall time (%s)", roundMinute(e.Total), strings.Join(parts, ", "))
}

// roundMinute rounds to whole minutes above ten minutes and to seconds below: an estimate
// has no more digits than that.
func roundMinute(d time.Duration) time.Duration {
	if d >= 10*time.Minute {
		return time.Duration(math.Round(d.Minutes())) * time.Minute
	}
	return d.Round(time.Second)
}
