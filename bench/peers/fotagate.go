package peers

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"time"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/server"
	"github.com/fotagate/fotagate/protocol"
)

// Fotagate is fotagate's own protocol: the real gateway/server serving a Go device that runs
// protocol.DeviceConn, as the C device will. The chunk is the device's announced maximum
// payload, so every data frame carries one chunk (19 bytes of header and tag on top); the
// gateway packs several frames into each write, as its write buffers allow, and never waits
// for Acks. The device is devicelib's Device, which Acks every devicelib.DefaultAckEvery bytes.
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
		"the device is devicelib's (Acks every " + sizeName(devicelib.DefaultAckEvery) + ", its default)"
}
func (Fotagate) ClientEnv() []string { return nil }

func (Fotagate) Check(chunk int) error {
	if chunk < protocol.MinPayload || chunk > protocol.MaxPayload {
		return fmt.Errorf("%w: payloads are %d..%d bytes", ErrChunkUnsupported, protocol.MinPayload, protocol.MaxPayload)
	}
	return nil
}

// DeviceRAM is sizeof(struct fota_ctx) at FOTA_MAX_PAYLOAD = chunk, as the C library's size
// report measured it with the ESP8266's compiler: the whole session, frame buffer included.
func (Fotagate) DeviceRAM(chunk int) RAM {
	rep, err := deviceSizes()
	if err != nil {
		return RAM{How: fmt.Sprintf("not measured: %v (bench/peers/device-size.txt; fotabench --c-size-report writes it)", err)}
	}
	row, ok := rep.Rows[chunk]
	if !ok {
		return RAM{How: fmt.Sprintf("not measured: the C size report has no FOTA_MAX_PAYLOAD=%d (fotabench --c-size-report)", chunk)}
	}
	how := fmt.Sprintf("sizeof(struct fota_ctx) at FOTA_MAX_PAYLOAD=%d: frame buffer %d + session %d "+
		"(devicelib/c/tools/size-report.sh, %s -Os); the API's deepest stack adds %d",
		chunk, row.Body, row.Ctx-row.Body, rep.Compiler, row.Stack)
	if ed, ok := rep.Variants["ed25519"][chunk]; ok {
		how += fmt.Sprintf(" (%d with Ed25519 vendor signatures, context %d)", ed.Stack, ed.Ctx)
	}
	return RAM{Bytes: row.Ctx, How: how}
}

type oneDevice struct{}

func (oneDevice) LookupDevice(id string) (server.Device, bool) {
	return server.Device{Class: benchClass, PSK: benchPSK}, id == benchDevice
}

type oneImage struct{ img *server.Image }

func (o oneImage) Latest(string, uint32) (*server.Image, error) { return o.img, nil }

// marker tells the meter where the stream starts: the gateway records Offered just before
// its first data write, which follows the Offer without waiting for the Accept.
type marker struct{ m *Meter }

func (r marker) Record(e server.Event) {
	if e.Kind == server.EventOffered {
		r.m.Mark(e.Remote)
	}
}

type fotagateServer struct {
	s  *server.Server
	ln net.Listener
}

func (Fotagate) Serve(addr string, img []byte, m *Meter) (Server, error) {
	image := &server.Image{Seq: benchSeq, Size: uint32(len(img)), Digest: sha256.Sum256(img),
		Open: func() (server.ImageReader, error) { return server.MemoryImage(img), nil }}
	s, err := server.New(server.Config{GatewayID: "bench-gw"}, oneDevice{}, oneImage{image}, marker{m}, nil)
	if err != nil {
		return nil, err
	}
	ln, err := server.ListenConfig().Listen(context.Background(), "tcp", addr)
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

// Fetch plays the device with devicelib's Device, as the simulator and the demo do: its
// staging slot is a MemFlash (with the ESP8266's timing under FlashTiming), its state a
// MemStore, and it makes its progress durable and Acks it every devicelib.DefaultAckEvery
// bytes, whatever that default is today. The image is read back from the slot.
func (Fotagate) Fetch(ctx context.Context, f FetchConfig) (Fetched, error) {
	mem, err := devicelib.NewMemFlash(f.slotSize(), sectorSize)
	if err != nil {
		return Fetched{}, err
	}
	var (
		flash devicelib.Flash = mem
		store devicelib.Store = &devicelib.MemStore{}
		pace  pacer
		out   Fetched
		start time.Time
		size  uint32
		first uint32 // the first payload's size: the chunk the gateway chose
	)
	if f.FlashTiming {
		flash, store = timedFlash(mem, &pace), timedStore{store, &pace}
	}
	dev, err := devicelib.New(devicelib.Config{ID: benchDevice, PSK: benchPSK, Class: benchClass, MaxPayload: f.Chunk,
		Flash: flash, Store: store,
		Progress: func(p devicelib.Progress) {
			size = p.Image.Size
			if out.FirstByte == 0 && p.Received > p.Start {
				out.FirstByte = time.Since(start)
				first = p.Received - p.Start
			}
			// The last call of a download comes once the whole image is in flash and synced.
			if out.Elapsed == 0 && p.Durable == p.Image.Size {
				pace.flush()
				out.Elapsed = time.Since(start)
			}
		}})
	if err != nil {
		return Fetched{}, err
	}
	start = time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", f.Addr)
	if err != nil {
		return Fetched{}, err
	}
	defer c.Close()
	res, err := dev.Update(ctx, c)
	if err != nil {
		return Fetched{}, fmt.Errorf("fotagate: %v after %d bytes: %w", res.Outcome, res.Received, err)
	}
	if res.Outcome != devicelib.Installed {
		return Fetched{}, fmt.Errorf("fotagate: outcome %v, want installed", res.Outcome)
	}
	if res.Image.Seq != benchSeq || out.Elapsed == 0 {
		return Fetched{}, fmt.Errorf("fotagate: installed image %d of %d bytes, want %d in full", res.Image.Seq, size, benchSeq)
	}
	if want := min(uint32(f.Chunk), size); first != want {
		return Fetched{}, fmt.Errorf("fotagate: first payload %d bytes, want %d: the gateway chose another chunk", first, want)
	}
	out.Image = make([]byte, res.Image.Size)
	if err := mem.Read(0, out.Image); err != nil {
		return Fetched{}, err
	}
	return out, nil
}
