package devicelib

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotagate/fotagate/protocol"
	"go.uber.org/zap"
)

// DefaultMaxPayload is the chunk a Device announces when Config.MaxPayload is zero: a
// quarter of a flash sector keeps the receive buffer of an ESP8266 near 1 KiB.
const DefaultMaxPayload = 1024

// Config is what a Device is built from. Flash and Store are required; zero values of the
// other optional fields take the defaults New documents.
type Config struct {
	ID    string                 // device ID, as provisioned on the gateway
	PSK   [protocol.KeySize]byte // pre-shared key
	Class string                 // device class; images of other classes are refused
	// MaxPayload is the largest chunk the device announces, protocol.MinPayload to
	// protocol.MaxPayload; 0 means DefaultMaxPayload.
	MaxPayload int
	// VendorKeys, when set, make a valid vendor signature mandatory: the device then trusts
	// the vendor for the image, not only the gateway.
	VendorKeys []ed25519.PublicKey
	// GatewayID, when set, is the only gateway the device talks to.
	GatewayID string
	// Flash is the staging slot; its size bounds the images the device accepts.
	Flash Flash
	// Store keeps the device's State.
	Store Store
	// Log receives one line per session and the reasons of failures; nil means zap.NewNop.
	Log *zap.Logger
	// Rand is the device's RNG for handshake nonces; nil means crypto/rand.
	Rand io.Reader
	// AckEvery is how many bytes the device writes between making its progress durable
	// (flash sync, state save) and acknowledging it, so also the most a cut can cost. It must
	// be a multiple of WordSize; 0 means DefaultAckEvery rounded up to whole sectors. Keep it
	// a multiple of the sector size: a resume from an offset inside a sector whose rest is no
	// longer erased restarts at the sector's start.
	AckEvery int
	// Progress, when set, is called from Update's goroutine after the handshake and after
	// every chunk. It must return quickly: the gateway's data waits meanwhile.
	Progress func(Progress)
}

// DefaultAckEvery is the interval between durable points when Config.AckEvery is 0. Each
// durable point costs a state save (on an ESP8266 a 45 ms sector erase, and wear) and a
// 20-byte Ack on the wire; 32 KiB keeps both near 0.06% of the image while a cut re-sends
// at most 32 KiB (0.13 s at 2 Mbit/s).
const DefaultAckEvery = 32 << 10

// Progress reports a download in progress.
type Progress struct {
	DeviceID string
	Image    Image  // the image being downloaded
	Start    uint32 // offset this session resumed from
	Received uint32 // image bytes held so far (in flash or in the word buffer)
	Durable  uint32 // bytes synced, recorded and acknowledged
}

// Outcome is how an update session ended.
type Outcome uint8

// Session outcomes. Failed is the zero value, so a Result that was never filled in is never
// mistaken for a success.
const (
	Failed    Outcome = iota // the session failed; Update returned the error
	UpToDate                 // the gateway has nothing newer
	Retry                    // the gateway is fetching the image; ask again after RetryAfter
	Installed                // the image is in the slot, verified and pending: Reboot boots it
	Refused                  // the device refused the offer (rollback, wrong class, signature...)
)

var outcomeNames = [...]string{"failed", "up_to_date", "retry", "installed", "refused"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MarshalText encodes the outcome as its String, for JSON.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText decodes what MarshalText encodes.
func (o *Outcome) UnmarshalText(b []byte) error {
	for i, name := range outcomeNames {
		if string(b) == name {
			*o = Outcome(i)
			return nil
		}
	}
	return fmt.Errorf("devicelib: unknown outcome %q", b)
}

// Result says how an Update ended.
type Result struct {
	Outcome Outcome
	// Image is the offered image, when there was one; with Installed it is now pending.
	Image Image
	// RetryAfter is the gateway's advice with Retry.
	RetryAfter time.Duration
	// Reason is protocol.Reason of the error with Refused and Failed.
	Reason string
	// ResumedFrom is the offset the session started at (0 for a fresh download).
	ResumedFrom uint32
	// Received counts the image bytes received in this session.
	Received uint32
	// GatewayID is the gateway's ID from its Offer.
	GatewayID string
	// BootCounter is the counter value this session used.
	BootCounter uint32
}

// Device is one simulated device: a staging slot, its durable state and the update logic. A
// Device runs one Update or Reboot at a time (others fail with ErrInUse); separate Devices
// share nothing and may run concurrently.
type Device struct {
	cfg      Config
	log      *zap.Logger
	slot     uint32 // largest image the slot holds
	ackEvery int64

	busy atomic.Bool

	mu        sync.Mutex // guards st and persisted
	st        State      // as last loaded or saved
	persisted bool       // the store has held a state for this Device
}

// New checks cfg, applies its defaults and loads the device's state from cfg.Store. A store
// with no state yet starts a factory-fresh device (running sequence 0); a corrupted state is
// an error, never a silent fresh start.
func New(cfg Config) (*Device, error) {
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if err := protocol.CheckDeviceID(cfg.ID); err != nil {
		return nil, fmt.Errorf("devicelib: Config.ID: %w", err)
	}
	if err := protocol.CheckClass(cfg.Class); err != nil {
		return nil, fmt.Errorf("devicelib: Config.Class: %w", err)
	}
	if cfg.MaxPayload < protocol.MinPayload || cfg.MaxPayload > protocol.MaxPayload {
		return nil, fmt.Errorf("devicelib: Config.MaxPayload %d: must be %d to %d (or 0 for %d)", cfg.MaxPayload, protocol.MinPayload, protocol.MaxPayload, DefaultMaxPayload)
	}
	if cfg.Flash == nil || cfg.Store == nil {
		return nil, errors.New("devicelib: Config.Flash and Config.Store are required")
	}
	if err := checkGeometry(cfg.Flash.Size(), cfg.Flash.SectorSize()); err != nil {
		return nil, fmt.Errorf("devicelib: Config.Flash: %w", err)
	}
	if cfg.AckEvery == 0 {
		sec := cfg.Flash.SectorSize()
		cfg.AckEvery = (DefaultAckEvery + sec - 1) / sec * sec
	}
	if cfg.AckEvery < 0 || cfg.AckEvery%WordSize != 0 {
		return nil, fmt.Errorf("devicelib: Config.AckEvery %d: must be a positive multiple of %d (best: of the sector size %d)", cfg.AckEvery, WordSize, cfg.Flash.SectorSize())
	}
	cfg.VendorKeys = slices.Clone(cfg.VendorKeys)
	d := &Device{
		cfg:      cfg,
		log:      cfg.Log.With(zap.String("device", cfg.ID)),
		slot:     uint32(min(cfg.Flash.Size(), math.MaxUint32&^(WordSize-1))),
		ackEvery: int64(cfg.AckEvery),
	}
	if err := d.load(); err != nil {
		return nil, err
	}
	return d, nil
}

// ID is the device ID.
func (d *Device) ID() string { return d.cfg.ID }

// State returns a copy of the device's state as last loaded or saved.
func (d *Device) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// Running is the sequence number of the running image: the anti-rollback floor.
func (d *Device) Running() uint32 { return d.State().Running.Seq }

// ImageDigest is the SHA-256 of the running image; zero for the factory image.
func (d *Device) ImageDigest() [protocol.DigestSize]byte { return d.State().Running.Digest }

// load reads the state from the store, as a device does at every boot: what counts is what
// is durable, not what this process remembers.
func (d *Device) load() error {
	st, err := d.cfg.Store.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case errors.Is(err, ErrNoState) && d.persisted:
		return fmt.Errorf("%w: the store lost a state it held: %w", ErrCorruptState, err)
	case errors.Is(err, ErrNoState):
		st = State{Class: d.cfg.Class}
	case err != nil:
		return fmt.Errorf("devicelib: loading state: %w", err)
	case st.Class != d.cfg.Class:
		return fmt.Errorf("%w: state is for class %q, device is %q", ErrStateMismatch, st.Class, d.cfg.Class)
	case st.Resume.Size > d.slot || st.Pending.Size > d.slot:
		return fmt.Errorf("%w: state names a %d-byte image, slot holds %d", ErrStateMismatch, max(st.Resume.Size, st.Pending.Size), d.slot)
	default:
		d.persisted = true
	}
	d.st = st
	return nil
}

// save makes st durable, then the Device's view of its state.
func (d *Device) save(st State) error {
	if err := d.cfg.Store.Save(st); err != nil {
		return fmt.Errorf("%w: saving state: %w", protocol.ErrFlash, err)
	}
	d.mu.Lock()
	d.st, d.persisted = st, true
	d.mu.Unlock()
	return nil
}

// Reboot simulates the bootloader at power-on. A pending image is checked once more against
// its digest, as MCUboot validates a slot before it swaps, and booted: only now does the
// running sequence, the anti-rollback floor, rise to the new image's. A pending image that no
// longer matches is dropped and the old one keeps running; Reboot then returns an error
// wrapping protocol.ErrDigestMismatch (protocol.ErrRollback for a pending sequence not above
// the running one).
func (d *Device) Reboot() error {
	if !d.busy.CompareAndSwap(false, true) {
		return ErrInUse
	}
	defer d.busy.Store(false)
	if err := d.load(); err != nil {
		return err
	}
	st := d.State()
	if st.Pending.IsZero() {
		return nil
	}
	h := sha256.New()
	var buf [PageSize]byte
	if err := hashFlash(d.cfg.Flash, int64(st.Pending.Size), h, buf[:]); err != nil {
		return fmt.Errorf("%w: reading the staged image: %w", protocol.ErrFlash, err)
	}
	var sum [protocol.DigestSize]byte
	h.Sum(sum[:0])
	pending := st.Pending
	st.Pending = Image{}
	if pending.Seq <= st.Running.Seq { // the bootloader keeps the floor too, whatever the state says
		if err := d.save(st); err != nil {
			return err
		}
		return fmt.Errorf("%w: staged image %d, running %d; not booting it", protocol.ErrRollback, pending.Seq, st.Running.Seq)
	}
	if sum != pending.Digest {
		if err := d.save(st); err != nil {
			return err
		}
		d.log.Warn("staged image changed since it was verified; not booting it", zap.Uint32("seq", pending.Seq))
		return fmt.Errorf("%w: staged image %d reads back as %x, not %x", protocol.ErrDigestMismatch, pending.Seq, sum[:8], pending.Digest[:8])
	}
	st.Running = pending
	if err := d.save(st); err != nil {
		return err
	}
	d.log.Info("booted new image", zap.Uint32("seq", pending.Seq))
	return nil
}

// hashFlash writes flash [0, n) into h, one buf at a time.
func hashFlash(f Flash, n int64, h io.Writer, buf []byte) error {
	for off := int64(0); off < n; {
		b := buf[:min(int64(len(buf)), n-off)]
		if err := f.Read(off, b); err != nil {
			return err
		}
		h.Write(b)
		off += int64(len(b))
	}
	return nil
}

// watchContext makes ctx interrupt I/O on conn: its deadline becomes the connection's, and
// cancellation expires the deadline or, for a stream without deadlines, closes it. The
// returned stop undoes what it can once Update is over.
func watchContext(ctx context.Context, conn io.ReadWriter) (stop func()) {
	type deadliner interface{ SetDeadline(time.Time) error }
	if dl, ok := conn.(deadliner); ok {
		t, hasDeadline := ctx.Deadline()
		if hasDeadline {
			dl.SetDeadline(t)
		}
		cancel := context.AfterFunc(ctx, func() { dl.SetDeadline(time.Unix(1, 0)) })
		return func() {
			if cancel() && hasDeadline {
				dl.SetDeadline(time.Time{})
			}
		}
	}
	if c, ok := conn.(io.Closer); ok {
		cancel := context.AfterFunc(ctx, func() { c.Close() })
		return func() { cancel() }
	}
	return func() {} // checked between frames only
}
