package protocol_test

import (
	"strings"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

// The budgets, pinned: at most 20 bytes per data frame and 150 handshake bytes besides
// the manifest, with the longest IDs the protocol allows.
func TestWireBudgets(t *testing.T) {
	if protocol.DataOverhead > 20 {
		t.Fatalf("data frame overhead %d > 20", protocol.DataOverhead)
	}
	dc := deviceConfig(4096)
	dc.DeviceID = strings.Repeat("d", protocol.MaxIDLen)
	gc, err := protocol.NewGatewayConfig(strings.Repeat("g", protocol.MaxIDLen), 4096, newSeeded(3))
	if err != nil {
		t.Fatal(err)
	}
	dh, _ := protocol.NewDeviceHandshake(dc)
	gh := protocol.NewGatewayHandshake(gc)
	if _, err := gh.ReadHello(dh.Hello(), lookupOne(dc.DeviceID, dc.PSK)); err != nil {
		t.Fatal(err)
	}
	offer, _ := gh.AppendOffer(nil, &protocol.Offer{Status: protocol.StatusUpToDate})
	if _, err := dh.ReadOffer(offer); err != nil {
		t.Fatal(err)
	}
	acc, _, _ := dh.AppendAccept(nil, protocol.CodeDeclined, 0)
	// An up-to-date offer is an offer with no manifest: its size is the handshake's own cost.
	total := len(dh.Hello()) + len(offer) + len(acc)
	if total != 149 || total > 150 {
		t.Fatalf("handshake is %d bytes besides the manifest (spec says 149, limit 150)", total)
	}
	if got := protocol.FrameBufferSize(64); got != 177 {
		t.Fatalf("frame buffer for 64-byte chunks: %d, spec says 177", got)
	}
}

func TestNamesCannotBeDotsOrEmpty(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "-x", "_x", ".hidden", "a/b", "a b", strings.Repeat("a", 17)} {
		if protocol.CheckClass(bad) == nil || protocol.CheckDeviceID(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"a", "esp8266-4m", "Boiler_17.b", strings.Repeat("a", 16)} {
		if err := protocol.CheckClass(good); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
}
