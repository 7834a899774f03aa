package peers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/protocol"
)

// Fotagate is fotagate's own protocol: the real gateway/server serving a Go device that runs
// protocol.DeviceConn, as the C device will. The chunk is the device's announced maximum
// payload, so every data frame carries one chunk (19 bytes of header and tag on top); the
// gateway packs several frames into each write, as its write buffers allow, and never waits
// for Acks. The device Acks once per 4 KiB flash sector.
type Fotagate struct{}

// The one device and image the bench provisions.
const (
	benchDevice = "bench-dev"
	benchClass  = "esp8266-4m"
	benchSeq    = 2
)

var benchPSK = sha256.Sum256([]byte("fotabench device key"))

func (Fotagate) Name() string    { return "fotagate" }
func (Fotagate) Network() string { return "tcp" }
func (Fotagate) About() string {
	return "fotagate protocol (PSK handshake, ChaCha20-Poly1305 frames) from the real gateway/server; " +
		"chunk = the device's max payload, one frame per chunk; the gateway packs several frames per write; " +
		"the device Acks every 4 KiB sector"
}
func (Fotagate) ClientEnv() []string { return nil }

func (Fotagate) Check(chunk int) error {
	if chunk < protocol.MinPayload || chunk > protocol.MaxPayload {
		return fmt.Errorf("%w: payloads are %d..%d bytes", ErrChunkUnsupported, protocol.MinPayload, protocol.MaxPayload)
	}
	return nil
}

func (Fotagate) DeviceRAM(chunk int) RAM {
	return RAM{Bytes: protocol.FrameBufferSize(chunk),
		How: "frame buffer max(19+chunk, 177) (PROTOCOL.md 3.3) + session context (pending C size report)"}
}

type oneDevice struct{}

func (oneDevice) LookupDevice(id string) (server.Device, bool) {
	return server.Device{Class: benchClass, PSK: benchPSK}, id == benchDevice
}

type oneImage struct{ img *server.Image }

func (o oneImage) Latest(string, uint32) (*server.Image, error) { return o.img, nil }

type memImage struct{ *bytes.Reader }

func (memImage) Close() error { return nil }

// marker tells the meter where the stream starts: the gateway records Accepted just before
// its first data write.
type marker struct{ m *Meter }

func (r marker) Record(e server.Event) {
	if e.Kind == server.EventAccepted {
		r.m.Mark(e.Remote)
	}
}

type fotagateServer struct {
	s  *server.Server
	ln net.Listener
}

func (Fotagate) Serve(addr string, img []byte, m *Meter) (Server, error) {
	image := &server.Image{Seq: benchSeq, Size: uint32(len(img)), Digest: sha256.Sum256(img),
		Open: func() (server.ImageReader, error) { return memImage{bytes.NewReader(img)}, nil }}
	s, err := server.New(server.Config{GatewayID: "bench-gw"}, oneDevice{}, oneImage{image}, marker{m}, nil)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go s.Serve(m.Listener(ln)) //nolint:errcheck // ends at Close
	return &fotagateServer{s: s, ln: ln}, nil
}

func (f *fotagateServer) Addr() string { return f.ln.Addr().String() }
func (f *fotagateServer) Info() string { return "" }
func (f *fotagateServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.s.Shutdown(ctx)
}

func (Fotagate) Fetch(ctx context.Context, f FetchConfig) (Fetched, error) {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", f.Addr)
	if err != nil {
		return Fetched{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) }) //nolint:errcheck // shows as an I/O error
	defer stop()
	dc, err := protocol.NewDeviceConn(c, &protocol.DeviceConfig{DeviceID: benchDevice, PSK: benchPSK, Class: benchClass,
		Running: benchSeq - 1, MaxPayload: f.Chunk, BootCounter: 1, Rand: rand.NewChaCha8([32]byte{1})})
	if err != nil {
		return Fetched{}, err
	}
	offer, err := dc.Handshake(func(*protocol.Manifest) uint32 { return 0 })
	if err != nil {
		return Fetched{}, err
	}
	if offer.Status != protocol.StatusOffer {
		return Fetched{}, fmt.Errorf("fotagate: offer status %d, want an image", offer.Status)
	}
	if got := int(offer.Manifest.Chunk); got != f.Chunk {
		return Fetched{}, fmt.Errorf("fotagate: gateway chose %d-byte chunks, asked for %d", got, f.Chunk)
	}
	out := Fetched{Image: make([]byte, offer.Manifest.Size)}
	acked := uint32(0)
	for {
		p, off, final, err := dc.Next()
		if err != nil {
			return Fetched{}, err
		}
		if out.FirstByte == 0 {
			out.FirstByte = time.Since(start)
		}
		copy(out.Image[off:], p)
		end := off + uint32(len(p))
		if final {
			out.Elapsed = time.Since(start)
			if sha256.Sum256(out.Image) != offer.Manifest.Digest {
				dc.Alert(protocol.CodeDigestMismatch) //nolint:errcheck // failing anyway
				return Fetched{}, protocol.ErrDigestMismatch
			}
			if err := dc.Report(protocol.CodeOK, end); err != nil {
				return Fetched{}, fmt.Errorf("fotagate: sending Report: %w", err)
			}
			return out, nil
		}
		if durable := end / sectorSize * sectorSize; durable > acked {
			if err := dc.Ack(durable); err != nil {
				return Fetched{}, fmt.Errorf("fotagate: sending Ack: %w", err)
			}
			acked = durable
		}
	}
}
