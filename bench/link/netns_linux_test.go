package link

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestNetnsLinkHasTheProfilesRoundTripAndLeavesNothingBehind(t *testing.T) {
	if err := NetnsAvailable(); err != nil {
		t.Skip(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash (for /dev/tcp) not found")
	}
	n, err := NewNetns(Profile{Name: "t", Rate: 10_000_000, RTT: 40 * time.Millisecond}, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	out, err := n.Command(false, "ip", "-br", "addr").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ClientIP) {
		t.Fatalf("client namespace addresses: %s %v", out, err)
	}
	up0, down0 := n.Counts()
	start := time.Now()
	// A connect to a closed port is answered by a RST one round trip later.
	n.Command(false, bash, "-c", "exec 3<>/dev/tcp/"+ServerIP+"/9").Run() //nolint:errcheck // refused is the point
	rtt := time.Since(start)
	up1, down1 := n.Counts()
	if up1.Sub(up0).Packets == 0 || down1.Sub(down0).Packets == 0 {
		t.Fatalf("no packets crossed the link: up %+v down %+v", up1.Sub(up0), down1.Sub(down0))
	}
	if rtt < 40*time.Millisecond {
		t.Fatalf("SYN and RST round trip took %v, want at least 40ms", rtt)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{n.srvNS, n.cliNS} {
		if nsExists(ns) {
			t.Fatalf("namespace %s left behind", ns)
		}
	}
}
