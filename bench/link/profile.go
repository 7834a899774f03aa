package link

import (
	"fmt"
	"strings"
	"time"
)

// Profile is one link condition a sweep runs on.
type Profile struct {
	Name string
	Rate int64         // bits per second each way; 0 leaves the path unshaped
	RTT  time.Duration // round trip the link adds
	Loss float64       // probability that a packet is dropped, each way
	// Flash makes every device write what it receives into a flash with the ESP8266's timing
	// (devicelib.TimedFlash), so the results show when the flash, not the link, bounds an
	// update. A profile's name with FlashSuffix is the same link with Flash set.
	Flash bool
}

// FlashSuffix turns any profile name into the same link with the device's flash timing on:
// "2mbit-50ms" + FlashSuffix.
const FlashSuffix = "+flash"

// Base is the name of the same link without the flash timing.
func (p Profile) Base() string { return strings.TrimSuffix(p.Name, FlashSuffix) }

// Emulated reports whether the profile needs an emulated link rather than plain loopback.
func (p Profile) Emulated() bool { return p.Rate > 0 || p.RTT > 0 || p.Loss > 0 }

// String describes the profile for people.
func (p Profile) String() string {
	flash := ""
	if p.Flash {
		flash = "; device flash timed as an ESP8266's (4 KiB erase 45 ms, 256 B page 0.8 ms)"
	}
	if !p.Emulated() {
		return "loopback, no shaping (CPU-bound)" + flash
	}
	var parts []string
	if p.Rate > 0 {
		parts = append(parts, fmt.Sprintf("%g Mbit/s each way", float64(p.Rate)/1e6))
	}
	parts = append(parts, fmt.Sprintf("%v round trip", p.RTT))
	if p.Loss > 0 {
		parts = append(parts, fmt.Sprintf("%g%% packet loss each way", p.Loss*100))
	}
	return strings.Join(parts, ", ") + flash
}

// Profiles are the link conditions the bench knows, in the order a full sweep runs them. The
// lossy one keeps the 2 Mbit/s, 50 ms link, so it differs from 2mbit-50ms by the loss alone.
var Profiles = []Profile{
	{Name: "loopback"},
	{Name: "2mbit-5ms", Rate: 2_000_000, RTT: 5 * time.Millisecond},
	{Name: "2mbit-50ms", Rate: 2_000_000, RTT: 50 * time.Millisecond},
	{Name: "2mbit-50ms-loss1", Rate: 2_000_000, RTT: 50 * time.Millisecond, Loss: 0.01},
}

// Lookup finds a profile by name; any name may carry FlashSuffix.
func Lookup(name string) (Profile, error) {
	var names []string
	base, flash := strings.CutSuffix(name, FlashSuffix)
	for _, p := range Profiles {
		if p.Name == base {
			p.Name, p.Flash = name, flash
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("link profile %q unknown (known: %s, each also with %s)", name, strings.Join(names, ", "), FlashSuffix)
}
