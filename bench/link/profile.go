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
}

// Emulated reports whether the profile needs an emulated link rather than plain loopback.
func (p Profile) Emulated() bool { return p.Rate > 0 || p.RTT > 0 || p.Loss > 0 }

// String describes the profile for people.
func (p Profile) String() string {
	if !p.Emulated() {
		return "loopback, no shaping (CPU-bound)"
	}
	var parts []string
	if p.Rate > 0 {
		parts = append(parts, fmt.Sprintf("%g Mbit/s each way", float64(p.Rate)/1e6))
	}
	parts = append(parts, fmt.Sprintf("%v round trip", p.RTT))
	if p.Loss > 0 {
		parts = append(parts, fmt.Sprintf("%g%% packet loss each way", p.Loss*100))
	}
	return strings.Join(parts, ", ")
}

// Profiles are the link conditions the bench knows, in the order a full sweep runs them.
var Profiles = []Profile{
	{Name: "loopback"},
	{Name: "2mbit-5ms", Rate: 2_000_000, RTT: 5 * time.Millisecond},
	{Name: "2mbit-50ms", Rate: 2_000_000, RTT: 50 * time.Millisecond},
	{Name: "2mbit-50ms-loss1", Rate: 2_000_000, RTT: 50 * time.Millisecond, Loss: 0.01},
}

// Lookup finds a profile by name.
func Lookup(name string) (Profile, error) {
	var names []string
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("link profile %q unknown (known: %s)", name, strings.Join(names, ", "))
}
