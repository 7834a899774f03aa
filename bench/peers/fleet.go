package peers

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"time"

	"github.com/fotagate/fotagate/gateway/server"
)

// The concurrency sweep's fleet: n devices, each with an ID and a key of its own, served by
// the real gateway/server.

// FleetClass is the class of every fleet device.
const FleetClass = benchClass

// FleetSeq is the sequence number of the image the fleet gateway offers.
const FleetSeq = benchSeq

// FleetID is the ID of fleet device i.
func FleetID(i int) string { return "sweep-" + strconv.Itoa(i) }

// FleetPSK is the key of fleet device i.
func FleetPSK(i int) [32]byte {
	return sha256.Sum256([]byte("fotabench sweep device " + strconv.Itoa(i)))
}

// fleetDevices provisions FleetID(0..n-1), deriving each key when it is looked up: no table
// of 10,000 keys in the gateway's heap that a real registry would not hold there either.
type fleetDevices struct{ n int }

func (f fleetDevices) LookupDevice(id string) (server.Device, bool) {
	s, ok := strings.CutPrefix(id, "sweep-")
	if !ok {
		return server.Device{}, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= f.n || FleetID(i) != id {
		return server.Device{}, false
	}
	return server.Device{Class: FleetClass, PSK: FleetPSK(i)}, true
}

// NewFleetGateway returns the real gateway/server provisioned with devices 0..n-1 and
// offering img to all of them, with room for every one at once and timeouts long enough for
// the sweep to hold every session while it samples the gateway's memory.
func NewFleetGateway(img []byte, n int) (*server.Server, error) {
	image := &server.Image{Seq: FleetSeq, Size: uint32(len(img)), Digest: sha256.Sum256(img),
		Open: func() (server.ImageReader, error) { return server.MemoryImage(img), nil }}
	return server.New(server.Config{GatewayID: "bench-gw", MaxSessions: n + 64,
		HandshakeTimeout: 10 * time.Minute, IdleTimeout: 10 * time.Minute}, fleetDevices{n}, oneImage{image}, nil, nil)
}
