package c_test

// Power-fail injection for the C device, as MCUboot's simulator does it: tests/powerfail.c runs
// the library (built with the sanitizers) on a simulated NOR flash and an atomic state store
// and loses the power right at the k-th erase, write, sync or state save; its sessions are real
// ones, over loopback TCP, with devicelib/internal/testgw (the protocol package's gateway
// role). First the operations T of a whole update are counted; then, for every k in 1..T, the
// device loses power at operation k, reboots from what survived and carries on. Then seeded
// runs with several cuts each, some tearing the operation or losing what was not synced.
//
// After every cut and every step the test checks what a device owner needs: a pending image,
// the one a boot loader would boot, always verifies in flash (never a partial one); the
// running image stays the old one until the new one is confirmed; the boot counter and the
// anti-rollback sequence never go back, and every Hello carries a counter never used before;
// the flash saw no broken promise (alignment, writes to unerased bytes, an erase of durable
// data, a record ahead of the synced flash). In the end the slot holds exactly the image.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotagate/fotagate/devicelib/internal/testgw"
	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/protocol"
)

const (
	pfID      = "dev-pf"
	pfOldSeq  = 2 // running at the factory
	pfNewSeq  = 3 // offered
	pfBoot    = 40
	pfSlot    = 160 << 10
	pfMaxStep = 16 // boots and sessions of one run: each cut costs at most two more
)

var pfKey = sha256.Sum256([]byte("fotagate C power-fail test key"))

// buildPowerfail builds tests/powerfail.c with the Makefile's flags and sanitizers, apart
// from testBinaries (one more make run, only for this program).
var buildPowerfail = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(buildDir, "powerfail")
	if out, err := exec.Command("make", "-s", "BUILD="+buildDir, bin).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building tests/powerfail.c (needs make and gcc: run ./.ci/deps): %v\n%s", err, out)
	}
	return bin, nil
})

// pfCase is one device configuration.
type pfCase struct {
	name       string
	imageSize  int
	maxPayload int
	ackEvery   int  // 0: the library's default
	ahead      bool // fota_erase_ahead after every data frame
}

var pfCases = []pfCase{
	// A durable point at every sector: the most state saves, so the most cut points.
	{name: "chunk-256-ack-every-sector", imageSize: 64<<10 + 5, maxPayload: 256, ackEvery: 4096},
	// A chunk that is no multiple of 4 (tail words), the default durable interval, and every
	// sector erased ahead as soon as the stream allows: cuts during erase-ahead.
	{name: "chunk-1000-default-ack-erase-ahead", imageSize: 100<<10 + 3, maxPayload: 1000, ahead: true},
	// Large chunks, erase-ahead, durable every two sectors.
	{name: "chunk-4096-ack-8k-erase-ahead", imageSize: 128 << 10, maxPayload: 4096, ackEvery: 8192, ahead: true},
}

// pfDevice is one running tests/powerfail.c and what the test has seen of it.
type pfDevice struct {
	t   *testing.T
	h   *harness
	gw  *testgw.Gateway
	img []byte // the image to install, sequence seq
	seq uint32
	sum [32]byte
	// known are the images the device may hold as pending or resume, by sequence.
	known map[uint32][]byte
	boot  uint32 // highest boot counter stored so far
	run   uint32 // highest running sequence so far
	// lastHello is the counter of the latest Hello the gateway saw: each must be higher.
	lastHello uint32
	sessions  int
}

func startPowerfail(t *testing.T, gw *testgw.Gateway, c pfCase, img []byte) *pfDevice {
	t.Helper()
	h := startProgram(t, buildPowerfail)
	ahead := "0"
	if c.ahead {
		ahead = "1"
	}
	if a := h.do("config", gw.Addr, pfID, testClass, hex.EncodeToString(pfKey[:]),
		fmt.Sprint(c.maxPayload), fmt.Sprint(pfSlot), fmt.Sprint(c.ackEvery), ahead); a[0] != "ok" {
		t.Fatalf("config: %q", a)
	}
	d := &pfDevice{t: t, h: h, gw: gw, known: map[uint32][]byte{}}
	d.target(img, pfNewSeq)
	return d
}

// target makes img, sequence seq, the image the gateway serves and untilInstalled waits for.
func (d *pfDevice) target(img []byte, seq uint32) {
	d.img, d.seq, d.sum = img, seq, sha256.Sum256(img)
	d.known[seq] = img
	d.gw.Serve(img, testgw.Image(img, testClass, seq, nil))
}

// factory resets the device: old image running, the slot holding an older image's bytes.
func (d *pfDevice) factory(seed uint64) {
	d.h.do("factory", fmt.Sprint(pfBoot), fmt.Sprint(pfOldSeq), fmt.Sprint(seed))
	d.boot, d.run, d.lastHello = pfBoot, pfOldSeq, 0
}

// cut arms a power cut at the k-th mutating operation from now.
func (d *pfDevice) cut(k uint64, mode string, seed uint64) {
	d.h.do("cut", fmt.Sprint(k), mode, fmt.Sprint(seed))
}

type pfState struct {
	boot, running, pendingSeq, pendingSize uint64
	pendingOK                              bool
	resumeSize, durable, ops, fired        uint64
	erases, aheadErases, firedAhead        uint64
	violations                             uint64
	violation                              string
}

func (d *pfDevice) state() pfState {
	d.t.Helper()
	a := d.h.do("check")
	if len(a) < 13 {
		d.t.Fatalf("check: %q", a)
	}
	n := make([]uint64, 13)
	for i := range n {
		v, err := strconv.ParseUint(a[i], 10, 64)
		if err != nil {
			d.t.Fatalf("check: %q", a)
		}
		n[i] = v
	}
	s := pfState{boot: n[0], running: n[1], pendingSeq: n[2], pendingSize: n[3], pendingOK: n[4] == 1,
		resumeSize: n[5], durable: n[6], ops: n[7], fired: n[8], erases: n[9], aheadErases: n[10],
		firedAhead: n[11], violations: n[12]}
	if len(a) > 13 {
		s.violation = a[13]
	}
	return s
}

// checkInvariants asserts what must hold after any step and any cut.
func (d *pfDevice) checkInvariants(when string) pfState {
	d.t.Helper()
	s := d.state()
	if s.violations != 0 {
		d.t.Fatalf("%s: the library broke a flash promise: %s (%d in all)", when, s.violation, s.violations)
	}
	if p, ok := d.known[uint32(s.pendingSeq)]; s.pendingSize != 0 && (!s.pendingOK || !ok || s.pendingSize != uint64(len(p))) {
		d.t.Fatalf("%s: pending image seq %d, %d bytes, verifies %v: a boot loader would boot a partial image",
			when, s.pendingSeq, s.pendingSize, s.pendingOK)
	}
	if s.boot < uint64(d.boot) {
		d.t.Fatalf("%s: boot counter went back from %d to %d", when, d.boot, s.boot)
	}
	if _, ok := d.known[uint32(s.running)]; s.running < uint64(d.run) || (s.running != pfOldSeq && !ok) {
		d.t.Fatalf("%s: running sequence %d after %d (anti-rollback floor lost?)", when, s.running, d.run)
	}
	// Only the image being installed is ever downloaded.
	if s.resumeSize != 0 && (s.resumeSize != uint64(len(d.img)) || s.durable > s.resumeSize) {
		d.t.Fatalf("%s: resume record of %d bytes, durable %d", when, s.resumeSize, s.durable)
	}
	d.boot, d.run = uint32(s.boot), uint32(s.running)
	return s
}

// session runs one session and checks what the gateway saw of it.
func (d *pfDevice) session() string {
	d.t.Helper()
	a := d.h.do("session")
	gs := d.gw.Next(d.t)
	d.sessions++
	if gs.Hello != nil {
		if c := gs.BootCounter(); c <= d.lastHello {
			d.t.Fatalf("session %d: Hello with boot counter %d after %d: a nonce could repeat", d.sessions, c, d.lastHello)
		} else {
			d.lastHello = c
		}
	}
	return a[0]
}

// untilInstalled boots and updates until the new image runs, checking after every step.
// It returns the number of power cuts that happened on the way.
func (d *pfDevice) untilInstalled(what string) (cuts int) {
	d.t.Helper()
	for step := 0; step < pfMaxStep; step++ {
		a := d.h.do("boot")
		switch {
		case a[0] == "powerloss":
			cuts++
		case a[0] == "running" && a[1] == fmt.Sprint(d.seq):
			d.checkInvariants(what + ": installed")
			if got := d.h.do("digest", fmt.Sprint(len(d.img))); got[0] != hex.EncodeToString(d.sum[:]) {
				d.t.Fatalf("%s: installed, but the slot does not hold the image", what)
			}
			return cuts
		case a[0] != "running":
			d.t.Fatalf("%s: boot answered %q", what, a)
		}
		d.checkInvariants(fmt.Sprintf("%s: after boot %d", what, step))
		out := d.session()
		d.checkInvariants(fmt.Sprintf("%s: after session %d", what, d.sessions))
		switch out {
		case "powerloss":
			cuts++
		case "done":
		default:
			d.t.Fatalf("%s: session %d ended %q: only a power cut may stop an update", what, d.sessions, out)
		}
	}
	d.t.Fatalf("%s: not installed after %d boots", what, pfMaxStep)
	return cuts
}

// startPFGateway starts the test gateway that knows the device, serving img as pfNewSeq.
// sessionThenInstall runs a session before the first boot (the device is still up, another
// image pending), then boots and updates until the target runs.
func (d *pfDevice) sessionThenInstall(what string) (cuts int) {
	d.t.Helper()
	out := d.session()
	d.checkInvariants(what + ": first session")
	switch out {
	case "powerloss":
		cuts++
	case "done":
	default:
		d.t.Fatalf("%s: first session ended %q: only a power cut may stop an update", what, out)
	}
	return cuts + d.untilInstalled(what)
}

func startPFGateway(t testing.TB, img []byte) *testgw.Gateway {
	t.Helper()
	gw := testgw.Start(t, protocol.MaxPayload, map[string][protocol.KeySize]byte{pfID: pfKey})
	gw.Serve(img, testgw.Image(img, testClass, pfNewSeq, nil))
	return gw
}

// countOps runs an undisturbed update and returns its mutating operations. Each sector of the
// image is erased exactly once, with erase-ahead all but the first by fota_erase_ahead (which
// runs only after a data frame was written).
func countOps(t *testing.T, d *pfDevice, c pfCase) uint64 {
	t.Helper()
	d.factory(1)
	if cuts := d.untilInstalled("undisturbed"); cuts != 0 {
		t.Fatalf("undisturbed update had %d power cuts", cuts)
	}
	s := d.state()
	sectors := uint64((c.imageSize + testSectorSz - 1) / testSectorSz)
	wantAhead := uint64(0)
	if c.ahead {
		wantAhead = sectors - 1
	}
	if s.erases != sectors || s.aheadErases != wantAhead {
		t.Fatalf("undisturbed update: %d erases, %d of them ahead; want %d, %d ahead", s.erases, s.aheadErases, sectors, wantAhead)
	}
	return s.ops
}

func TestPowerFailAtEveryOperation(t *testing.T) {
	for i, c := range pfCases {
		t.Run(c.name, func(t *testing.T) {
			img := randomImage(c.imageSize, uint64(100+i))
			gw := startPFGateway(t, img)
			d := startPowerfail(t, gw, c, img)
			ops := countOps(t, d, c)
			if ops < 30 {
				t.Fatalf("an update takes only %d operations: too few to test", ops)
			}
			t.Logf("%d operations (erase, write, sync, save) in an update", ops)
			var inAhead uint64 // cuts that hit fota_erase_ahead's erase
			for k := uint64(1); k <= ops; k++ {
				d.factory(1) // the same flash contents and RNG as the count, so op k is the same
				d.cut(k, "before", k)
				what := fmt.Sprintf("cut before operation %d of %d", k, ops)
				if cuts := d.untilInstalled(what); cuts != 1 {
					t.Fatalf("%s: %d power cuts happened, want exactly 1", what, cuts)
				}
				s := d.state()
				if s.fired != 1 {
					t.Fatalf("%s: the cut fired %d times", what, s.fired)
				}
				inAhead += s.firedAhead
			}
			// Every erase-ahead was a cut point, and the resume after each was correct.
			if sectors := uint64((c.imageSize + testSectorSz - 1) / testSectorSz); c.ahead && inAhead != sectors-1 {
				t.Fatalf("%d cuts hit fota_erase_ahead, want one per sector erased ahead (%d)", inAhead, sectors-1)
			}
		})
	}
}

// TestPowerFailRandomCuts gives each seeded run up to four cuts at random operations, in every
// mode: before the operation, tearing it, or losing what was not synced.
func TestPowerFailRandomCuts(t *testing.T) {
	modes := []string{"before", "torn", "volatile"}
	for i, c := range pfCases {
		t.Run(c.name, func(t *testing.T) {
			img := randomImage(c.imageSize, uint64(200+i))
			gw := startPFGateway(t, img)
			d := startPowerfail(t, gw, c, img)
			ops := countOps(t, d, c)
			const runs = 25
			for run := range runs {
				seed := uint64(1000*i + run)
				r := rand.New(rand.NewPCG(seed, 7))
				d.factory(seed)
				n := 1 + r.IntN(4)
				// The first cut lies within the count, so it must fire; later ones count
				// from the reboot and may land past the end, as a cut that never comes.
				d.cut(1+r.Uint64N(ops), modes[r.IntN(len(modes))], r.Uint64())
				fired := 0
				what := fmt.Sprintf("run %d (seed %d, %d cuts)", run, seed, n)
				// After each cut the next is armed, counted from the reboot; past n, none.
				rearm := func() {
					fired++
					if fired < n {
						d.cut(1+r.Uint64N(ops/2+1), modes[r.IntN(len(modes))], r.Uint64())
					} else {
						d.cut(0, "before", 1)
					}
				}
				for step := 0; ; step++ {
					if step == pfMaxStep {
						t.Fatalf("%s: not installed after %d boots", what, pfMaxStep)
					}
					a := d.h.do("boot")
					if a[0] == "running" && a[1] == fmt.Sprint(d.seq) {
						break
					}
					if a[0] == "powerloss" {
						rearm()
						d.checkInvariants(fmt.Sprintf("%s: cut in boot %d", what, step))
						continue
					}
					d.checkInvariants(fmt.Sprintf("%s: boot %d", what, step))
					out := d.session()
					d.checkInvariants(fmt.Sprintf("%s: after session %d", what, d.sessions))
					switch out {
					case "powerloss":
						rearm()
					case "done":
					default:
						t.Fatalf("%s: session ended %q: only a power cut may stop an update", what, out)
					}
				}
				if fired == 0 {
					t.Fatalf("%s: the first cut, within the %d operations of an update, never fired", what, ops)
				}
				d.cut(0, "before", 1)
				if cuts := d.untilInstalled(what); cuts != 0 {
					t.Fatalf("%s: %d cuts after disarming", what, cuts)
				}
			}
		})
	}
}

// holdAfterOffer relays between a device and the gateway at gwAddr, but holds the gateway's
// bytes after its first frame (the Offer) for hold: the device, having sent its Accept, finds
// its socket idle meanwhile, as a device on a slow link does.
func holdAfterOffer(t testing.TB, gwAddr string, hold time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		dev, err := ln.Accept()
		if err != nil {
			return
		}
		defer dev.Close()
		gw, err := net.Dial("tcp", gwAddr)
		if err != nil {
			return
		}
		defer gw.Close()
		go func() {
			io.Copy(gw, dev) //nolint:errcheck // ends when either side closes
			gw.Close()
		}()
		hdr := make([]byte, 3)
		if _, err := io.ReadFull(gw, hdr); err != nil {
			return
		}
		offer := make([]byte, int(hdr[1])<<8|int(hdr[2]))
		if _, err := io.ReadFull(gw, offer); err != nil {
			return
		}
		dev.Write(append(hdr, offer...)) //nolint:errcheck // the device's run reports a cut
		time.Sleep(hold)
		io.Copy(dev, gw) //nolint:errcheck // ends when either side closes
	}()
	return ln.Addr().String()
}

// TestFotadevErasesAheadUnderFlashTiming runs fotadev-c (ports/posix) with the ESP8266 timing
// model and --erase-ahead against the test gateway, through a relay that holds the data for a
// second after the handshake: the device erases sectors ahead while its socket is idle (each
// in 45 ms), then installs the identical image, erasing none twice.
func TestFotadevErasesAheadUnderFlashTiming(t *testing.T) {
	img := randomImage(48<<10+7, 300)
	gw := startPFGateway(t, img)
	ahead := installHeld(t, gw, img, true)
	sectors := (len(img) + testSectorSz - 1) / testSectorSz
	if ahead < 1 || ahead > sectors {
		t.Fatalf("%d sectors erased ahead, want 1..%d", ahead, sectors)
	}
	t.Logf("%d of %d sectors erased ahead", ahead, sectors)
}

// BenchmarkFotadevEraseAhead installs a 48 KiB image with fotadev-c (ASan build) under the
// ESP8266 flash timing through the relay that stalls the data for a second after the
// handshake, as a slow gateway or link would: inline (the baseline) erases each sector when
// its first frame arrives, ahead moves the erases into the stall. Compare the two ns/op:
//
//	go test -run - -bench FotadevEraseAhead -benchtime 3x ./devicelib/c/
func BenchmarkFotadevEraseAhead(b *testing.B) {
	img := randomImage(48<<10+7, 300)
	for _, ahead := range []bool{false, true} {
		name := map[bool]string{false: "inline", true: "ahead"}[ahead]
		b.Run(name, func(b *testing.B) {
			gw := startPFGateway(b, img)
			for range b.N {
				installHeld(b, gw, img, ahead)
			}
		})
	}
}

// installHeld runs a new fotadev-c-1024 with --flash-timing (and --erase-ahead if ahead)
// through holdAfterOffer, checks that it installed the identical image and the gateway heard
// an ok Report, and returns the sectors it erased ahead.
func installHeld(t testing.TB, gw *testgw.Gateway, img []byte, ahead bool) int {
	t.Helper()
	bins, err := fotadevBinaries()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "device.json")
	if err := registry.WriteKeyFile(key, registry.Device{ID: pfID, Class: testClass, PSK: registry.Key(pfKey)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr := holdAfterOffer(t, gw.Addr, time.Second)
	args := []string{"--gateway", addr, "--key", key,
		"--flash", filepath.Join(dir, "slot"), "--state", filepath.Join(dir, "state"),
		"--slot-size", fmt.Sprint(256 << 10), "--timeout", "20", "--flash-timing", "--json"}
	if ahead {
		args = append(args, "--erase-ahead")
	}
	cmd := exec.CommandContext(ctx, bins[1024], args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fotadev-c: %v; stderr:\n%s", err, stderr.String())
	}
	var r struct {
		Outcome     string `json:"outcome"`
		Running     uint32 `json:"running"`
		ErasedAhead *int   `json:"erased_ahead"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("fotadev-c printed %q: %v", out, err)
	}
	if r.Outcome != "installed" || r.Running != pfNewSeq || (r.ErasedAhead != nil) != ahead {
		t.Fatalf("fotadev-c: %s", out)
	}
	if s := gw.Next(t); s.Err != nil || s.Report == nil || s.Report.Code != protocol.CodeOK {
		t.Fatalf("gateway session: %+v", s)
	}
	slot, err := os.ReadFile(filepath.Join(dir, "slot"))
	if err != nil || !bytes.Equal(slot[:len(img)], img) {
		t.Fatalf("the slot does not hold the image (%v)", err)
	}
	if r.ErasedAhead == nil {
		return 0
	}
	return *r.ErasedAhead
}

// TestPowerFailReplacingAPendingImage cuts the power at every operation of an update that
// arrives while another verified image is pending, not yet booted: the library must drop the
// pending record before it erases a byte of that image (the simulated flash fails the test
// otherwise), so a boot loader never boots a half-erased image, and the device ends running the
// newest one.
func TestPowerFailReplacingAPendingImage(t *testing.T) {
	c := pfCase{imageSize: 24<<10 + 1, maxPayload: 1024, ackEvery: 4096, ahead: true}
	first, second := randomImage(c.imageSize, 400), randomImage(36<<10+9, 401)
	gw := startPFGateway(t, first)
	d := startPowerfail(t, gw, c, first)
	// The first image verified and pending; then the gateway offers the second.
	pending := func() {
		t.Helper()
		d.factory(1)
		d.target(first, pfNewSeq)
		if out := d.session(); out != "done" {
			t.Fatalf("first image: %q", out)
		}
		if s := d.checkInvariants("first image pending"); s.pendingSeq != pfNewSeq {
			t.Fatalf("first image not pending: %+v", s)
		}
		d.target(second, pfNewSeq+1)
	}
	pending()
	d.cut(0, "before", 1) // count from here
	if cuts := d.sessionThenInstall("undisturbed"); cuts != 0 {
		t.Fatalf("undisturbed update had %d power cuts", cuts)
	}
	ops := d.state().ops
	t.Logf("%d operations to replace the pending image", ops)
	for k := uint64(1); k <= ops; k++ {
		pending()
		d.cut(k, "before", k)
		what := fmt.Sprintf("cut before operation %d of %d", k, ops)
		if cuts := d.sessionThenInstall(what); cuts != 1 {
			t.Fatalf("%s: %d power cuts happened, want exactly 1", what, cuts)
		}
		if s := d.state(); s.fired != 1 {
			t.Fatalf("%s: the cut fired %d times", what, s.fired)
		}
	}
}
