package peers

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Peer is one way to move an image from a gateway to a device.
type Peer interface {
	// Name is the short name used in flags, tables and file names.
	Name() string
	// About says in a sentence or two how this peer moves the image and what the chunk size
	// maps to.
	About() string
	// Network is "tcp" or "udp".
	Network() string
	// Check returns nil when the peer can move chunk-sized pieces, else an error wrapping
	// ErrChunkUnsupported that says why.
	Check(chunk int) error
	// Serve starts the server side on addr (host:port, port 0 for any), serving img, with every
	// connection behind m.
	Serve(addr string, img []byte, m *Meter) (Server, error)
	// Fetch plays the device: it fetches the image from a server and returns it.
	Fetch(ctx context.Context, f FetchConfig) (Fetched, error)
	// DeviceRAM is what the device needs for this peer at a chunk size, computed from
	// documented constants, not measured.
	DeviceRAM(chunk int) RAM
	// ClientEnv lists environment variables (KEY=value) the device process needs.
	ClientEnv() []string
}

// ErrChunkUnsupported marks a chunk size a peer cannot use.
var ErrChunkUnsupported = errors.New("chunk size not supported")

// Server is a running server side.
type Server interface {
	Addr() string
	// Info is what a client needs besides the address (a certificate pin), or "".
	Info() string
	Close() error
}

// FetchConfig is what a device is told.
type FetchConfig struct {
	Addr  string
	Info  string // Server.Info
	Chunk int
	// FlashTiming makes the device write what it receives into a flash with the ESP8266's
	// timing as it goes (flash.go).
	FlashTiming bool
	// ImageSize is the size of the image the device expects: its staging slot. 0 means 2 MiB.
	ImageSize int
	// Budget, when positive, makes a StopAndWait peer's device stop once it holds at least
	// this many image bytes (a whole number of blocks) instead of fetching the whole image:
	// Fetched.Image is then that prefix and Fetched.Stopped is set. Streaming peers ignore
	// it; the harness never asks them (its fetch child refuses with ErrBudgetUnsupported).
	Budget int
}

// StopAndWait is a peer that has one block in flight at a time: every block costs the same
// round trip (and, with flash timing, the same flash write), so the rate over a prefix of
// the image is the rate over all of it and the bench may measure such a peer on a prefix
// (FetchConfig.Budget). A streaming peer is not one: its server runs ahead of the device by
// whatever the socket buffers hold, so its bytes and CPU over a prefix would say nothing.
type StopAndWait interface {
	Peer
	// OneBlockPerRoundTrip is a marker: it only says that the peer is stop-and-wait.
	OneBlockPerRoundTrip()
}

// IsStopAndWait reports whether p may be measured on a prefix.
func IsStopAndWait(p Peer) bool {
	_, ok := p.(StopAndWait)
	return ok
}

// ErrBudgetUnsupported refuses a Budget for a streaming peer.
var ErrBudgetUnsupported = errors.New("a transfer budget needs a stop-and-wait peer")

// slotSize is the device's staging slot for f: the image size rounded up to whole sectors.
func (f FetchConfig) slotSize() int64 {
	n := f.ImageSize
	if n <= 0 {
		n = 2 << 20
	}
	return int64((n + sectorSize - 1) / sectorSize * sectorSize)
}

// Fetched is what a device got.
type Fetched struct {
	Image     []byte
	Elapsed   time.Duration // from before the dial to the last image byte
	FirstByte time.Duration // from before the dial to the first image byte; 0 if not observable
	// Stopped is set when the device stopped after FetchConfig.Budget: Image is a prefix and
	// Elapsed runs to its last byte.
	Stopped bool
}

// RAM is a computed device RAM figure.
type RAM struct {
	Bytes int    // 0 when not applicable
	How   string // the formula and its sources
}

// All returns every peer, in the order tables show them.
func All() []Peer {
	return []Peer{Fotagate{}, FotagateC{}, TCP{}, HTTPS{}, HTTPS{RecordPerChunk: true}, CoAP{}}
}

// Lookup finds a peer by name.
func Lookup(name string) (Peer, error) {
	var names []string
	for _, p := range All() {
		if p.Name() == name {
			return p, nil
		}
		names = append(names, p.Name())
	}
	return nil, fmt.Errorf("peer %q unknown (known: %v)", name, names)
}

// SectorSize is the flash sector of the bench's devices (ESP8266: 4 KiB).
const SectorSize = 4096

const sectorSize = SectorSize

// sizeName writes a byte count as people read it: 32 KiB, 512 B.
func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
