package link

import (
	"strings"
	"testing"
)

func TestLookupTakesAnyProfileWithTheFlashSuffix(t *testing.T) {
	p, err := Lookup("2mbit-50ms+flash")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := Lookup("2mbit-50ms")
	if !p.Flash || base.Flash || p.Base() != "2mbit-50ms" || p.Rate != base.Rate || p.RTT != base.RTT {
		t.Fatalf("%+v from %+v", p, base)
	}
	if !strings.Contains(p.String(), "flash") || strings.Contains(base.String(), "flash") {
		t.Errorf("descriptions %q and %q", p, base)
	}
	if lo, err := Lookup("loopback+flash"); err != nil || lo.Emulated() || !lo.Flash {
		t.Errorf("loopback+flash: %+v %v", lo, err)
	}
	for _, bad := range []string{"2mbit", "+flash", "2mbit-50ms+flash+flash", "2mbit-50ms-flash"} {
		if _, err := Lookup(bad); err == nil {
			t.Errorf("%q found", bad)
		}
	}
}

func TestTheLinkProfilesOfTheIssue(t *testing.T) {
	// 2 Mbit/s with 5 ms and 50 ms round trips, and the lossy one on the 50 ms link.
	want := map[string]Profile{
		"2mbit-5ms":        {Rate: 2e6, RTT: 5e6},
		"2mbit-50ms":       {Rate: 2e6, RTT: 50e6},
		"2mbit-50ms-loss1": {Rate: 2e6, RTT: 50e6, Loss: 0.01},
	}
	for name, w := range want {
		p, err := Lookup(name)
		if err != nil || p.Rate != w.Rate || p.RTT != w.RTT || p.Loss != w.Loss {
			t.Errorf("%s: %+v %v", name, p, err)
		}
	}
}
