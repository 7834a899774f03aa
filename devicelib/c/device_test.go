package c_test

// Sessions of the C device (tests/vectors.c) against the Go gateway role of the protocol
// package, in process: whatever the C device sends is opened by the Go code, so every Accept,
// Ack, Report and Alert is checked by the reference implementation (counters, offsets that
// never go back or run ahead). Beyond the vectors: chunks and images of awkward sizes,
// durable points, resume after a cut, policy refusals, gateway Alerts, failing flash and
// state callbacks, and frames the device must refuse before buffering them.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

const (
	testID       = "dev-7"
	testClass    = "esp8266-4m"
	testGateway  = "gw-test"
	testSlot     = 256 << 10
	testRunning  = 3
	testBoot     = 5
	testSectorSz = 4096  // FOTA_SECTOR_SIZE of the harness build
	testAckEvery = 32768 // FOTA_ACK_EVERY_DEFAULT: durable points when ack_every is 0
)

var testKey = sha256.Sum256([]byte("fotagate C device test key"))

// newTestDevice starts a C device with a fresh state (boot counter testBoot, running
// testRunning) and an erased slot.
func newTestDevice(t *testing.T, maxPayload, ackEvery int) *device {
	t.Helper()
	d := startDevice(t, maxPayload)
	if got := d.configure(deviceConfig{id: testID, class: testClass, psk: testKey[:],
		maxPayload: maxPayload, slot: testSlot, ackEvery: ackEvery}); got != "ok" {
		t.Fatalf("fota_init: %s", got)
	}
	d.setState(storedState{boot: testBoot, running: testRunning})
	d.do("random", "000102030405060708090a0b")
	return d
}

// gateway is the Go gateway role for one session.
type gateway struct {
	t   *testing.T
	cfg *protocol.GatewayConfig
	gh  *protocol.GatewayHandshake
	gs  *protocol.GatewaySession
}

func newGateway(t *testing.T, maxPayload int) *gateway {
	t.Helper()
	cfg, err := protocol.NewGatewayConfig(testGateway, maxPayload, rand.NewChaCha8([32]byte{9}))
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{t: t, cfg: cfg}
}

// hello starts a device session and has the gateway check the Hello.
func (g *gateway) hello(d *device) {
	g.t.Helper()
	g.gh = protocol.NewGatewayHandshake(g.cfg)
	d.do("init")
	a := d.do("start")
	if len(a) != 1 || !strings.HasPrefix(a[0], "send:") {
		g.t.Fatalf("start: %q", a)
	}
	lookup := func(id string) ([32]byte, bool) { return testKey, id == testID }
	if _, err := g.gh.ReadHello(unhx(g.t, strings.TrimPrefix(a[0], "send:")), lookup); err != nil {
		g.t.Fatalf("gateway rejected the C Hello: %v", err)
	}
}

// offer sends o and returns the device's events.
func (g *gateway) offer(d *device, o *protocol.Offer) []string {
	g.t.Helper()
	frame, err := g.gh.AppendOffer(nil, o)
	if err != nil {
		g.t.Fatal(err)
	}
	return d.feed(frame, splitters(1)[0])
}

// accept opens the Accept among evs.
func (g *gateway) accept(evs []string) (*protocol.Accept, error) {
	g.t.Helper()
	sends := sent(g.t, evs)
	if len(sends) != 1 {
		g.t.Fatalf("events %q: want exactly one Accept", evs)
	}
	a, gs, err := g.gh.ReadAccept(sends[0])
	g.gs = gs
	return a, err
}

// frames seals the image from the accepted offset: all of it, or the first n frames.
func (g *gateway) frames(img []byte, n int) []byte {
	g.t.Helper()
	var out []byte
	for i := 0; !g.gs.Done() && (n < 0 || i < n); i++ {
		var err error
		if out, err = g.gs.AppendFrame(out, bytes.NewReader(img)); err != nil {
			g.t.Fatal(err)
		}
	}
	return out
}

// read opens what the device sent, in order, as the gateway's reader would; it stops at the
// first error.
func (g *gateway) read(evs []string) ([]protocol.DeviceMessage, error) {
	g.t.Helper()
	var msgs []protocol.DeviceMessage
	for _, f := range sent(g.t, evs) {
		m, err := g.gs.ReadDeviceFrame(f)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// sent returns the frames of the send events in evs.
func sent(t *testing.T, evs []string) [][]byte {
	var out [][]byte
	for _, e := range evs {
		if s, ok := strings.CutPrefix(e, "send:"); ok {
			out = append(out, unhx(t, s))
		}
	}
	return out
}

func last(evs []string) string {
	if len(evs) == 0 {
		return ""
	}
	return evs[len(evs)-1]
}

func randomImage(n int, seed uint64) []byte {
	img := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(img)
	return img
}

func offerOf(img []byte, seq uint32) *protocol.Offer {
	return &protocol.Offer{Status: protocol.StatusOffer, Manifest: &protocol.Manifest{
		Seq: seq, Size: uint32(len(img)), Class: testClass, Digest: sha256.Sum256(img)}}
}

// install runs one whole session of img on d and returns the device's messages.
func install(t *testing.T, d *device, g *gateway, img []byte, s splitter) []protocol.DeviceMessage {
	t.Helper()
	g.hello(d)
	evs := g.offer(d, offerOf(img, testRunning+1))
	if a, err := g.accept(evs); err != nil || a.Code != protocol.CodeOK {
		t.Fatalf("accept %+v, %v (events %q)", a, err, evs)
	}
	evs = d.feed(g.frames(img, -1), s)
	if last(evs) != "done" {
		t.Fatalf("events end with %q, want done", last(evs))
	}
	msgs, err := g.read(evs)
	if err != nil {
		t.Fatalf("the Go gateway refused a device message: %v", err)
	}
	if got := d.slot(len(img)); !bytes.Equal(got, img) {
		t.Fatal("the slot does not hold the image")
	}
	return msgs
}

func TestDeviceInstallsFromGoGateway(t *testing.T) {
	for _, c := range []struct {
		size, devMax, gwMax, ackEvery int
	}{
		{1, 64, 4096, 0},
		{64, 64, 4096, 0},
		{65, 64, 4096, 0},
		{4095, 64, 4096, 0},
		{4096, 4096, 4096, 0},
		{4097, 4096, 4096, 0},
		{3*4096 + 5, 1000, 4096, 0},    // a chunk that is no multiple of 4: unaligned payloads
		{50_001, 333, 4096, 8192},      // odd chunk, durable point every two sectors
		{40_000, 4096, 1027, 0},        // the gateway caps the chunk
		{100_000, 4096, 4096, 1 << 20}, // durable only at the end
	} {
		t.Run(fmt.Sprintf("%d-bytes-chunk-%d-%d-ack-%d", c.size, c.devMax, c.gwMax, c.ackEvery), func(t *testing.T) {
			t.Parallel()
			img := randomImage(c.size, uint64(c.size))
			d := newTestDevice(t, c.devMax, c.ackEvery)
			msgs := install(t, d, newGateway(t, c.gwMax), img, splitters(uint64(c.size))[2])

			every := c.ackEvery
			if every == 0 {
				every = testAckEvery
			}
			// An Ack at every durable point (one per frame at most), the whole image, the Report.
			var want []protocol.DeviceMessage
			chunk := min(c.devMax, c.gwMax)
			done := 0
			for off := 0; off < c.size; {
				n := min(chunk, c.size-off)
				if off+n < c.size && (off+n)/every > off/every {
					done = (off + n) / every * every
					want = append(want, protocol.DeviceMessage{Type: protocol.TypeAck, Offset: uint32(done)})
				}
				off += n
			}
			want = append(want, protocol.DeviceMessage{Type: protocol.TypeAck, Offset: uint32(c.size)},
				protocol.DeviceMessage{Type: protocol.TypeReport, Code: protocol.CodeOK, Offset: uint32(c.size)})
			if !slices.Equal(msgs, want) {
				t.Fatalf("device messages %+v\nwant %+v", msgs, want)
			}
			// The last word is padded with 0xff, which programs nothing: the slot past the
			// image reads erased.
			if tail := d.slot((c.size + 3) &^ 3)[c.size:]; !bytes.Equal(tail, bytes.Repeat([]byte{0xff}, len(tail))) {
				t.Fatalf("slot past the image holds %x, want erased bytes", tail)
			}
			st := d.state()
			if st.boot != testBoot+1 || st.running != testRunning || st.resume.size != 0 ||
				st.pending.size != uint32(c.size) || st.pending.seq != testRunning+1 {
				t.Fatalf("state after install: %+v", st)
			}
		})
	}
}

// cut runs a session that the connection ends after n data frames and returns the durable
// offset the device recorded.
func cut(t *testing.T, d *device, img []byte, seq uint32, n int) uint32 {
	t.Helper()
	g := newGateway(t, 4096)
	g.hello(d)
	evs := g.offer(d, offerOf(img, seq))
	if _, err := g.accept(evs); err != nil {
		t.Fatal(err)
	}
	evs = d.feed(g.frames(img, n), splitters(uint64(n))[2])
	if _, err := g.read(evs); err != nil {
		t.Fatal(err)
	}
	if got := d.do("close"); !slices.Equal(got, []string{"error:truncated"}) {
		t.Fatalf("close after a cut: %q", got)
	}
	return d.state().durable
}

func TestDeviceResumesFromDurableOffsetAfterCut(t *testing.T) {
	img := randomImage(70_000, 1)
	d := newTestDevice(t, 1024, testSectorSz)
	// 30 frames of 1 KiB: durable at the last sector boundary below 30 KiB.
	if got := cut(t, d, img, testRunning+1, 30); got != 28672 {
		t.Fatalf("durable offset %d after a cut at 30720, want 28672", got)
	}
	// A second cut after resuming adds to it.
	if got := cut(t, d, img, testRunning+1, 10); got != 36864 {
		t.Fatalf("durable offset %d after the second cut, want 36864", got)
	}
	g := newGateway(t, 4096)
	g.hello(d)
	a, err := g.accept(g.offer(d, offerOf(img, testRunning+1)))
	if err != nil || a.Offset != 36864 {
		t.Fatalf("resumed Accept %+v, %v; want offset 36864", a, err)
	}
	evs := d.feed(g.frames(img, -1), splitters(3)[1])
	if _, err := g.read(evs); err != nil || last(evs) != "done" {
		t.Fatalf("resumed session: %v, events end %q", err, last(evs))
	}
	if !bytes.Equal(d.slot(len(img)), img) {
		t.Fatal("the slot does not hold the image after resuming")
	}
}

func TestDeviceStartsOverForAnotherImage(t *testing.T) {
	a, b := randomImage(20_000, 2), randomImage(9_000, 3)
	d := newTestDevice(t, 1024, testSectorSz)
	if got := cut(t, d, a, testRunning+1, 12); got == 0 {
		t.Fatal("nothing durable after the cut")
	}
	// Another image (a newer build) is offered: the record is reset, the slot rewritten.
	msgs := install(t, d, newGateway(t, 4096), b, splitters(4)[0])
	if msgs[0].Type != protocol.TypeAck || msgs[len(msgs)-1].Code != protocol.CodeOK {
		t.Fatalf("messages %+v", msgs)
	}
}

func TestDeviceReverifiesItsPendingImage(t *testing.T) {
	img := randomImage(10_000, 4)
	d := newTestDevice(t, 512, testSectorSz)
	install(t, d, newGateway(t, 4096), img, splitters(5)[0])
	// The gateway did not get the Report, say, and offers the same image again: the device
	// takes only the empty Final, verifies its slot again and reports.
	g := newGateway(t, 4096)
	g.hello(d)
	a, err := g.accept(g.offer(d, offerOf(img, testRunning+1)))
	if err != nil || a.Offset != uint32(len(img)) {
		t.Fatalf("Accept %+v, %v; want the whole image as offset", a, err)
	}
	evs := d.feed(g.frames(img, -1), splitters(5)[0])
	msgs, err := g.read(evs)
	if err != nil || last(evs) != "done" || msgs[len(msgs)-1].Code != protocol.CodeOK {
		t.Fatalf("messages %+v, %v, events %q", msgs, err, evs)
	}
}

func TestDeviceReportsDigestMismatchOfItsSlot(t *testing.T) {
	img := randomImage(30_000, 5)
	d := newTestDevice(t, 1024, testSectorSz)
	durable := cut(t, d, img, testRunning+1, 20)
	// A bit rots below the durable offset between the sessions: the stream's bytes are all
	// good, but the slot as read back is not, so the device must not mark it bootable.
	d.do("flash", "100", hx([]byte{img[100] ^ 1}))
	g := newGateway(t, 4096)
	g.hello(d)
	if a, err := g.accept(g.offer(d, offerOf(img, testRunning+1))); err != nil || a.Offset != durable {
		t.Fatalf("Accept %+v, %v", a, err)
	}
	evs := d.feed(g.frames(img, -1), splitters(6)[2])
	msgs, err := g.read(evs)
	if err != nil || last(evs) != "error:digest_mismatch" {
		t.Fatalf("events %q, %v", evs, err)
	}
	if m := msgs[len(msgs)-1]; m.Type != protocol.TypeReport || m.Code != protocol.CodeDigestMismatch {
		t.Fatalf("last message %+v, want a digest_mismatch Report", m)
	}
	if st := d.state(); st.resume.size != 0 || st.pending.size != 0 {
		t.Fatalf("state after a bad slot: %+v; want no resume record and nothing pending", st)
	}
}

func TestDeviceVerifiesTheSlotNotTheStream(t *testing.T) {
	img := randomImage(12_000, 13)
	d := newTestDevice(t, 1024, testSectorSz)
	g := newGateway(t, 4096)
	g.hello(d)
	if _, err := g.accept(g.offer(d, offerOf(img, testRunning+1))); err != nil {
		t.Fatal(err)
	}
	// Every frame opens and hashes fine, but one write silently lands wrong in flash.
	d.do("corrupt", "7")
	evs := d.feed(g.frames(img, -1), splitters(13)[0])
	msgs, err := g.read(evs)
	if err != nil || last(evs) != "error:digest_mismatch" || msgs[len(msgs)-1].Code != protocol.CodeDigestMismatch {
		t.Fatalf("messages %+v, %v, events end %q; want a digest_mismatch Report", msgs, err, last(evs))
	}
	if st := d.state(); st.pending.size != 0 {
		t.Fatalf("a slot that reads back wrong is pending: %+v", st)
	}
}

func TestDeviceResumesOnlyWhereTheSlotIsErased(t *testing.T) {
	img := randomImage(6000, 14)
	digest := sha256.Sum256(img)
	for _, c := range []struct {
		name    string
		durable uint32
		flashed int // bytes of the image in the slot, from 0
		want    uint32
	}{
		{"clean past the durable offset", 700, 700, 700},
		{"programmed past the durable offset", 700, 1000, 0},
		{"durable offset not on a word", 701, 701, 0},
		{"durable at a sector boundary", 4096, 5000, 4096},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := newTestDevice(t, 1024, testSectorSz)
			d.setState(storedState{boot: testBoot, running: testRunning,
				resume: image{testRunning + 1, uint32(len(img)), digest[:]}, durable: c.durable})
			d.do("flash", "0", hx(img[:c.flashed]))
			g := newGateway(t, 4096)
			g.hello(d)
			if got := g.gh.Hello().ResumeOffset; got != c.want {
				t.Fatalf("the Hello names offset %d, want %d", got, c.want)
			}
			a, err := g.accept(g.offer(d, offerOf(img, testRunning+1)))
			if err != nil || a.Offset != c.want {
				t.Fatalf("Accept %+v, %v; want offset %d", a, err, c.want)
			}
			// The harness refuses any write over programmed bytes: this must install.
			evs := d.feed(g.frames(img, -1), splitters(14)[2])
			if _, err := g.read(evs); err != nil || last(evs) != "done" {
				t.Fatalf("%v, events end %q", err, last(evs))
			}
		})
	}
}

// offerEarly is what a gateway sends before it has read the Accept (PROTOCOL.md 4.4): the
// Offer, then the first frames of img from where the Hello's resume point makes it start.
func (g *gateway) offerEarly(o *protocol.Offer, img []byte) []byte {
	g.t.Helper()
	out, err := g.gh.AppendOffer(nil, o)
	if err != nil {
		g.t.Fatal(err)
	}
	for s := g.gh.Session(); s.MayAppend(); {
		if out, err = s.AppendFrame(out, bytes.NewReader(img)); err != nil {
			g.t.Fatal(err)
		}
	}
	return out
}

// acceptFirst opens the Accept, which must be the first message among evs, then the messages
// the device sent after it for the early frames.
func (g *gateway) acceptFirst(evs []string) (*protocol.Accept, error) {
	g.t.Helper()
	sends := sent(g.t, evs)
	if len(sends) == 0 {
		g.t.Fatalf("events %q: no Accept", evs)
	}
	a, gs, err := g.gh.ReadAccept(sends[0])
	if err != nil {
		return a, err
	}
	g.gs = gs
	for _, f := range sends[1:] {
		if _, err := gs.ReadDeviceFrame(f); err != nil {
			return a, err
		}
	}
	return a, nil
}

// The Offer and up to 16 KiB of frames behind it arrive before the device has sent its Accept,
// in one piece or split anywhere: the device answers the Offer first, then takes them; fresh
// and resumed, images within and beyond the early window, durable points inside it.
func TestDeviceTakesEarlyFramesBehindTheOffer(t *testing.T) {
	for _, c := range []struct {
		size, chunk, cutAfter int
		ackEvery              int
	}{
		{1, 64, 0, 0},
		{5000, 64, 0, testSectorSz},    // 78 frames, all early, a durable point among them
		{16384, 1024, 0, testSectorSz}, // the whole window is the image
		{40_000, 4096, 0, testSectorSz},
		{50_001, 333, 0, 0},
		{70_000, 1024, 30, testSectorSz}, // resumed at 28672: early frames from there
		{70_000, 4096, 2, 0},             // cut before a durable point: from 0 again
	} {
		img := randomImage(c.size, uint64(c.size+c.chunk))
		for _, s := range splitters(uint64(c.size)) {
			t.Run(fmt.Sprintf("%d-bytes-chunk-%d-cut-%d/%s", c.size, c.chunk, c.cutAfter, s.name), func(t *testing.T) {
				t.Parallel()
				d := newTestDevice(t, c.chunk, c.ackEvery)
				var durable uint32
				if c.cutAfter > 0 {
					durable = cut(t, d, img, testRunning+1, c.cutAfter)
				}
				g := newGateway(t, 4096)
				g.hello(d)
				if got := g.gh.Hello().ResumeOffset; got != durable {
					t.Fatalf("the Hello names offset %d, want %d", got, durable)
				}
				evs := d.feed(g.offerEarly(offerOf(img, testRunning+1), img), s)
				if len(evs) < 2 || evs[0] != "offer" {
					t.Fatalf("events %q: want the offer, then the Accept", evs)
				}
				a, err := g.acceptFirst(evs)
				if err != nil || a.Code != protocol.CodeOK || a.Offset != durable {
					t.Fatalf("Accept %+v, %v; want ok at %d", a, err, durable)
				}
				if !g.gs.Done() {
					more := d.feed(g.frames(img, -1), s)
					if _, err := g.read(more); err != nil {
						t.Fatal(err)
					}
					evs = append(evs, more...)
				}
				if last(evs) != "done" {
					t.Fatalf("events end %q, want done", last(evs))
				}
				if !bytes.Equal(d.slot(len(img)), img) {
					t.Fatal("the slot does not hold the image")
				}
			})
		}
	}
}

// A resume point whose ID (the digest's first 8 bytes) the offered image shares, but not its
// digest: the gateway streams from the resume offset, which the slot does not hold for this
// image. The device declines, forgets the point, and the next session starts from 0.
func TestDeviceDeclinesAStaleResumePoint(t *testing.T) {
	for _, pending := range []bool{false, true} {
		t.Run(fmt.Sprintf("pending-%v", pending), func(t *testing.T) {
			t.Parallel()
			img := randomImage(20_000, 21)
			d := newTestDevice(t, 1024, testSectorSz)
			want := uint32(0)
			if pending {
				install(t, d, newGateway(t, 4096), img, splitters(21)[0])
				want = uint32(len(img))
			} else {
				want = cut(t, d, img, testRunning+1, 12)
			}
			stale := offerOf(img, testRunning+2)
			stale.Manifest.Digest[31] ^= 1
			g := newGateway(t, 4096)
			g.hello(d)
			if h := g.gh.Hello(); h.ResumeOffset != want || want == 0 {
				t.Fatalf("the Hello names offset %d, want %d", h.ResumeOffset, want)
			}
			evs := d.feed(g.offerEarly(stale, img), splitters(21)[2])
			a, err := g.acceptFirst(evs)
			var pe *protocol.PeerError
			if !errors.As(err, &pe) || a.Code != protocol.CodeDeclined || last(evs) != "error:declined" {
				t.Fatalf("Accept %+v, %v, events %q; want declined", a, err, evs)
			}
			if st := d.state(); st.resume.size != 0 || st.durable != 0 || st.pending.size != 0 {
				t.Fatalf("state after the refusal: %+v; want no resume point", st)
			}
			// The next Hello names nothing; the image (the real one) installs from 0.
			g = newGateway(t, 4096)
			g.hello(d)
			if h := g.gh.Hello(); h.ResumeOffset != 0 || h.ResumeID != [protocol.ResumeIDSize]byte{} {
				t.Fatalf("the next Hello names %d of %x", h.ResumeOffset, h.ResumeID)
			}
			a, err = g.acceptFirst(d.feed(g.offerEarly(offerOf(img, testRunning+2), img), splitters(21)[0]))
			if err != nil || a.Code != protocol.CodeOK || a.Offset != 0 {
				t.Fatalf("Accept %+v, %v; want ok at 0", a, err)
			}
			if evs := d.feed(g.frames(img, -1), splitters(21)[0]); last(evs) != "done" {
				t.Fatalf("events end %q", last(evs))
			}
			if !bytes.Equal(d.slot(len(img)), img) {
				t.Fatal("the slot does not hold the image")
			}
		})
	}
}

func TestDeviceRefusesByPolicy(t *testing.T) {
	img := randomImage(5000, 6)
	good := offerOf(img, testRunning+1).Manifest
	for _, c := range []struct {
		name    string
		m       protocol.Manifest
		decline bool
		code    byte
		reason  string
	}{
		{"wrong class", protocol.Manifest{Seq: good.Seq, Size: good.Size, Class: "esp32-c3", Digest: good.Digest}, false, protocol.CodeWrongClass, "wrong_class"},
		{"rollback", protocol.Manifest{Seq: testRunning - 1, Size: good.Size, Class: testClass, Digest: good.Digest}, false, protocol.CodeRollback, "rollback"},
		{"same sequence", protocol.Manifest{Seq: testRunning, Size: good.Size, Class: testClass, Digest: good.Digest}, false, protocol.CodeDeclined, "declined"},
		{"larger than the slot", protocol.Manifest{Seq: good.Seq, Size: testSlot + 1, Class: testClass, Digest: good.Digest}, false, protocol.CodeTooLarge, "too_large"},
		{"application declines", *good, true, protocol.CodeDeclined, "declined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := newTestDevice(t, 1024, testSectorSz)
			if c.decline {
				d.do("decline")
			}
			g := newGateway(t, 4096)
			g.hello(d)
			m := c.m
			evs := g.offer(d, &protocol.Offer{Status: protocol.StatusOffer, Manifest: &m})
			if last(evs) != "error:"+c.reason {
				t.Fatalf("events %q, want error:%s", evs, c.reason)
			}
			a, err := g.accept(evs)
			var pe *protocol.PeerError
			if !errors.As(err, &pe) || a.Code != c.code || a.Offset != 0 {
				t.Fatalf("Accept %+v, %v; want code %#x", a, err, c.code)
			}
			if st := d.state(); st.resume.size != 0 || st.boot != testBoot+1 {
				t.Fatalf("a refusal changed the state beyond the boot counter: %+v", st)
			}
		})
	}
}

func TestDeviceStopsOnGatewayAlert(t *testing.T) {
	img := randomImage(9000, 7)
	d := newTestDevice(t, 1024, testSectorSz)
	g := newGateway(t, 4096)
	g.hello(d)
	if _, err := g.accept(g.offer(d, offerOf(img, testRunning+1))); err != nil {
		t.Fatal(err)
	}
	stream := g.frames(img, 2)
	alert, err := g.gs.AppendAlert(nil, protocol.CodeUnavailable)
	if err != nil {
		t.Fatal(err)
	}
	evs := d.feed(append(stream, alert...), splitters(7)[1])
	if last(evs) != "error:unavailable" || len(sent(t, evs)) != 0 {
		t.Fatalf("events %q: want error:unavailable and nothing sent back", evs)
	}
}

func TestDeviceBindsToItsConfiguredGateway(t *testing.T) {
	d := startDevice(t, 1024)
	if got := d.configure(deviceConfig{id: testID, class: testClass, gateway: "gw-other", psk: testKey[:],
		maxPayload: 1024, slot: testSlot}); got != "ok" {
		t.Fatal(got)
	}
	d.setState(storedState{boot: testBoot, running: testRunning})
	d.do("random", "000102030405060708090a0b")
	g := newGateway(t, 4096)
	g.hello(d)
	if evs := g.offer(d, offerOf(randomImage(100, 8), testRunning+1)); !slices.Equal(evs, []string{"error:auth_failed"}) {
		t.Fatalf("Offer from %s to a device bound to gw-other: %q", testGateway, evs)
	}
}

// failAt arms the harness so that the n-th next call of op fails.
func (d *device) failAt(op string, n int) { d.do("fail", op, fmt.Sprint(n)) }

func TestBootCounterIsDurableBeforeTheHello(t *testing.T) {
	d := newTestDevice(t, 1024, testSectorSz)
	d.failAt("save", 1)
	if got := d.do("start"); !slices.Equal(got, []string{"error:flash_error"}) {
		t.Fatalf("start with a failing state save: %q, want no Hello", got)
	}
	if st := d.state(); st.boot != testBoot {
		t.Fatalf("boot counter %d after a failed save", st.boot)
	}
	d.failAt("random", 1)
	d.configure(deviceConfig{id: testID, class: testClass, psk: testKey[:], maxPayload: 1024, slot: testSlot})
	if got := d.do("start"); !slices.Equal(got, []string{"error:random_failed"}) {
		t.Fatalf("start with a failing RNG: %q", got)
	}
	// The counter was saved before the RNG was asked: it never goes back.
	if st := d.state(); st.boot != testBoot+1 {
		t.Fatalf("boot counter %d, want %d", st.boot, testBoot+1)
	}
}

func TestDeviceAlertsOnFlashFailure(t *testing.T) {
	img := randomImage(20_000, 9)
	for _, c := range []struct {
		op   string
		n    int
		want protocol.DeviceMessage // the device's last message
	}{
		{"erase", 2, protocol.DeviceMessage{Type: protocol.TypeAlert, Code: protocol.CodeFlashError}},
		{"write", 5, protocol.DeviceMessage{Type: protocol.TypeAlert, Code: protocol.CodeFlashError}},
		{"sync", 1, protocol.DeviceMessage{Type: protocol.TypeAlert, Code: protocol.CodeFlashError}},
		{"save", 3, protocol.DeviceMessage{Type: protocol.TypeAlert, Code: protocol.CodeFlashError}}, // the third durable point
		{"read", 1, protocol.DeviceMessage{Type: protocol.TypeReport, Code: protocol.CodeFlashError, Offset: 20_000}},
	} {
		t.Run(c.op, func(t *testing.T) {
			t.Parallel()
			d := newTestDevice(t, 1024, testSectorSz)
			g := newGateway(t, 4096)
			g.hello(d)
			if _, err := g.accept(g.offer(d, offerOf(img, testRunning+1))); err != nil {
				t.Fatal(err)
			}
			d.failAt(c.op, c.n)
			evs := d.feed(g.frames(img, -1), splitters(9)[2])
			if last(evs) != "error:flash_error" {
				t.Fatalf("events end %q, want error:flash_error", last(evs))
			}
			msgs, err := g.read(evs)
			var pe *protocol.PeerError
			if c.want.Type == protocol.TypeAlert {
				if !errors.As(err, &pe) || pe.Code != protocol.CodeFlashError {
					t.Fatalf("gateway read %+v, %v; want a flash_error Alert", msgs, err)
				}
				return
			}
			if err != nil || msgs[len(msgs)-1] != c.want {
				t.Fatalf("messages %+v, %v; want last %+v", msgs, err, c.want)
			}
			if st := d.state(); st.pending.size != 0 {
				t.Fatalf("an image whose read-back failed is pending: %+v", st)
			}
		})
	}
	t.Run("accept", func(t *testing.T) {
		// The state save that records a new image fails: refuse in the Accept itself.
		d := newTestDevice(t, 1024, testSectorSz)
		g := newGateway(t, 4096)
		g.hello(d)
		d.failAt("save", 1)
		evs := g.offer(d, offerOf(img, testRunning+1))
		a, err := g.accept(evs)
		var pe *protocol.PeerError
		if !errors.As(err, &pe) || a.Code != protocol.CodeFlashError || last(evs) != "error:flash_error" {
			t.Fatalf("Accept %+v, %v, events %q", a, err, evs)
		}
	})
}

func TestDeviceRefusesFramesBeforeBufferingThem(t *testing.T) {
	hdr := func(typ byte, n int) []byte { return []byte{typ, byte(n >> 8), byte(n)} }
	handshakeDone := func(t *testing.T) (*device, *gateway) {
		d := newTestDevice(t, 256, testSectorSz)
		g := newGateway(t, 4096)
		g.hello(d)
		if _, err := g.accept(g.offer(d, offerOf(randomImage(3000, 10), testRunning+1))); err != nil {
			t.Fatal(err)
		}
		return d, g
	}
	for _, c := range []struct {
		name     string
		streamed bool // after the handshake, else in place of the Offer
		in       []byte
		want     string
	}{
		{"data before the offer", false, hdr(protocol.TypeData, 100), "error:unexpected_message"},
		{"alert before the offer", false, hdr(protocol.TypeAlert, 17), "error:unexpected_message"},
		{"unknown type", false, hdr(0x42, 1), "error:unexpected_message"},
		{"offer over 174 bytes", false, hdr(protocol.TypeOffer, 175), "error:frame_too_large"},
		{"empty offer", false, hdr(protocol.TypeOffer, 0), "error:malformed"},
		{"reject of two bytes", false, hdr(protocol.TypeReject, 2), "error:frame_too_large"},
		{"empty reject", false, hdr(protocol.TypeReject, 0), "error:malformed"},
		{"reject with an unknown code", false, append(hdr(protocol.TypeReject, 1), 0x77), "error:malformed"},
		{"reject busy", false, append(hdr(protocol.TypeReject, 1), protocol.CodeBusy), "error:busy"},
		{"ack from the gateway", true, hdr(protocol.TypeAck, 20), "error:unexpected_message"},
		{"second offer", true, hdr(protocol.TypeOffer, 50), "error:unexpected_message"},
		{"final too early", true, hdr(protocol.TypeFinal, 272), "error:unexpected_message"},
		{"data over the chunk", true, hdr(protocol.TypeData, 273), "error:frame_too_large"},
		{"data of 64 KiB", true, hdr(protocol.TypeData, 0xffff), "error:frame_too_large"},
		{"alert too long", true, hdr(protocol.TypeAlert, 18), "error:frame_too_large"},
		{"forged alert", true, append(hdr(protocol.TypeAlert, 17), make([]byte, 17)...), "error:bad_record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var d *device
			if c.streamed {
				d, _ = handshakeDone(t)
			} else {
				d = newTestDevice(t, 256, testSectorSz)
				newGateway(t, 4096).hello(d)
			}
			evs := d.feed(c.in, splitters(11)[1])
			if last(evs) != c.want {
				t.Fatalf("events %q, want %s", evs, c.want)
			}
			if c.streamed && strings.HasPrefix(c.want, "error:") {
				// After the Accept the gateway is told why: one Alert.
				if s := sent(t, evs); len(s) != 1 || s[0][0] != protocol.TypeAlert {
					t.Fatalf("sent %x, want one Alert", s)
				}
			}
		})
	}
}

func TestDeviceConfigIsChecked(t *testing.T) {
	d := startDevice(t, 1024)
	ok := deviceConfig{id: testID, class: testClass, psk: testKey[:], maxPayload: 1024, slot: testSlot}
	for _, c := range []struct {
		name string
		edit func(*deviceConfig)
	}{
		{"empty ID", func(c *deviceConfig) { c.id = "" }},
		{"ID of 17 bytes", func(c *deviceConfig) { c.id = "abcdefghijklmnopq" }},
		{"ID starting with a dot", func(c *deviceConfig) { c.id = ".dev" }},
		{"ID with a slash", func(c *deviceConfig) { c.id = "dev/1" }},
		{"class with an @", func(c *deviceConfig) { c.class = "esp@8266" }},
		{"gateway ID starting with a dash", func(c *deviceConfig) { c.gateway = "-gw" }},
		{"max payload 63", func(c *deviceConfig) { c.maxPayload = 63 }},
		{"max payload over the build's", func(c *deviceConfig) { c.maxPayload = 4097 }},
		{"slot of no whole sector", func(c *deviceConfig) { c.slot = testSlot + 4 }},
		{"empty slot", func(c *deviceConfig) { c.slot = 0 }},
		{"ack every half a sector", func(c *deviceConfig) { c.ackEvery = 2048 }},
	} {
		c2 := ok
		c.edit(&c2)
		if c2.id == "" {
			c2.id = "''" // the harness needs a field; quotes are outside the alphabet too
		}
		if got := d.configure(c2); got != "bad_config" {
			t.Errorf("%s: fota_init said %s, want bad_config", c.name, got)
		}
	}
	if got := d.configure(ok); got != "ok" {
		t.Fatalf("a good config: %s", got)
	}
	// A failed init leaves a context that only reports the failure.
	c2 := ok
	c2.maxPayload = 1
	d.configure(c2)
	if got := d.do("start"); !slices.Equal(got, []string{"error:bad_config"}) {
		t.Fatalf("start after a failed init: %q", got)
	}
}

// The counters in the Ack frames the device sends are consecutive, and the ones a device of
// this ID would use are bound to its key: an Ack replayed from another session is refused.
func TestDeviceAcksAreBoundToTheSession(t *testing.T) {
	img := randomImage(9000, 12)
	d := newTestDevice(t, 1024, testSectorSz)
	g1 := newGateway(t, 4096)
	g1.hello(d)
	g1.accept(g1.offer(d, offerOf(img, testRunning+1)))
	evs1 := d.feed(g1.frames(img, -1), splitters(12)[0])
	d2 := newTestDevice(t, 1024, testSectorSz)
	d2.do("random", "ff0102030405060708090a0b")
	g2 := newGateway(t, 4096)
	g2.hello(d2)
	g2.accept(g2.offer(d2, offerOf(img, testRunning+1)))
	ack := sent(t, evs1)[0]
	if binary.BigEndian.Uint16(ack[1:3]) != 20 {
		t.Fatalf("first message %x is no Ack", ack)
	}
	g2.frames(img, -1)
	if _, err := g2.gs.ReadDeviceFrame(ack); !errors.Is(err, protocol.ErrBadRecord) {
		t.Fatalf("an Ack of another session: %v, want bad_record", err)
	}
}
