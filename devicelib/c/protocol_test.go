package c_test

// Replays protocol/testdata/vectors/v1.json through the C device (include/fota.h), driven over
// the line protocol of tests/vectors.c: every session's Hello, Accept, Ack and Report must
// come out byte for byte, the slot must end holding the image, and every device-role negative
// vector must fail with its named error. Each stream is fed whole, one byte at a time and in
// random pieces, since a device gets its bytes in whatever pieces TCP delivers.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

// The device harness, built for the largest chunk and for the smallest frame buffer.
func buildVectors() (string, error)   { return testBinary("vectors") }
func buildVectors64() (string, error) { return testBinary("vectors_64") }

// The vector file's shape (protocol/testdata/vectors/README.md); only what a device uses.
type vectorFile struct {
	Sessions []sessionVector  `json:"sessions"`
	Negative []negativeVector `json:"negative"`
}

type sessionVector struct {
	Name        string `json:"name"`
	PSK         string `json:"psk"`
	DeviceID    string `json:"device_id"`
	GatewayID   string `json:"gateway_id"`
	Class       string `json:"class"`
	RunningSeq  uint32 `json:"running_seq"`
	MaxPayload  int    `json:"max_payload"`
	BootCounter uint32 `json:"boot_counter"`
	NdRandom    string `json:"nd_random"`
	Offer       struct {
		Status     int    `json:"status"`
		Seq        uint32 `json:"seq"`
		Size       uint32 `json:"size"`
		Chunk      int    `json:"chunk"`
		SHA256     string `json:"sha256"`
		RetryAfter int    `json:"retry_after"`
	} `json:"offer"`
	ResumeOffset uint32 `json:"resume_offset"`
	ResumeSHA256 string `json:"resume_sha256"`
	AcceptCode   int    `json:"accept_code"`
	AcceptOffset uint32 `json:"accept_offset"`
	Image        string `json:"image"`
	Wire         struct {
		Hello  string   `json:"hello"`
		Offer  string   `json:"offer"`
		Accept string   `json:"accept"`
		Data   []string `json:"data"`
		Ack    string   `json:"ack"`
		Report string   `json:"report"`
	} `json:"wire"`
}

type negativeVector struct {
	Name    string `json:"name"`
	Session string `json:"session"`
	Role    string `json:"role"`
	Class   string `json:"class"`
	Inbound string `json:"inbound"`
	Expect  string `json:"expect"`
}

func loadVectors(t *testing.T) *vectorFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "protocol", "testdata", "vectors", "v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Sessions) == 0 || len(f.Negative) == 0 {
		t.Fatal("empty vector file")
	}
	return &f
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorSlot is the harness's update slot, and vectorAckEvery its durable-point interval: past
// every vector image, so the device makes progress durable only at the end and its messages
// are the vectors' Ack of the whole image (d2g counter 1) and Report (counter 2).
const (
	vectorSlot     = 1 << 20
	vectorAckEvery = 1 << 20
)

// device is one C device in a tests/vectors.c process.
type device struct {
	*harness
}

func startDevice(t *testing.T, maxPayload int) *device {
	t.Helper()
	build := buildVectors
	if maxPayload <= 64 {
		build = buildVectors64
	}
	return &device{startProgram(t, build)}
}

type deviceConfig struct {
	id, class, gateway string
	psk                []byte
	maxPayload         int
	slot, ackEvery     int
}

// configure runs fota_init and returns "ok" or its error name.
func (d *device) configure(c deviceConfig) string {
	gw := c.gateway
	if gw == "" {
		gw = "-"
	}
	a := d.do("config", c.id, c.class, gw, hex.EncodeToString(c.psk),
		fmt.Sprint(c.maxPayload), fmt.Sprint(c.slot), fmt.Sprint(c.ackEvery))
	if a[0] == "fail" {
		return a[1]
	}
	return a[0]
}

// image is a fota_image as the harness writes it: seq, size, digest.
type image struct {
	seq, size uint32
	digest    []byte
}

func (i image) fields() []string {
	return []string{fmt.Sprint(i.seq), fmt.Sprint(i.size), hx(i.digest)}
}

// storedState is struct fota_state.
type storedState struct {
	boot, running uint32
	resume        image
	durable       uint32
	pending       image
}

func (d *device) setState(s storedState) {
	f := []string{"state", fmt.Sprint(s.boot), fmt.Sprint(s.running)}
	f = append(f, s.resume.fields()...)
	f = append(f, fmt.Sprint(s.durable))
	f = append(f, s.pending.fields()...)
	d.do(f...)
}

func (d *device) state() storedState {
	a := d.do("getstate")
	if len(a) != 9 {
		d.t.Fatalf("getstate answered %q", a)
	}
	n := func(s string) uint32 {
		var v uint32
		fmt.Sscan(s, &v)
		return v
	}
	img := func(f []string) image {
		dg := unhx(d.t, f[2])
		if allZero(dg) {
			dg = nil
		}
		return image{n(f[0]), n(f[1]), dg}
	}
	return storedState{boot: n(a[0]), running: n(a[1]), resume: img(a[2:5]), durable: n(a[5]), pending: img(a[6:9])}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (d *device) slot(n int) []byte {
	if n == 0 {
		return nil
	}
	return unhx(d.t, d.do("slot", "0", fmt.Sprint(n))[0])
}

// events drops the need_more tokens that end every feed.
func events(a []string) []string {
	return slices.DeleteFunc(a, func(s string) bool { return s == "need_more" })
}

// splitter cuts a stream into the pieces a device is fed; with step, the harness itself
// feeds each piece step bytes at a time.
type splitter struct {
	name string
	cut  func(b []byte) [][]byte
	step int
}

func splitters(seed uint64) []splitter {
	return []splitter{
		{"whole", func(b []byte) [][]byte { return [][]byte{b} }, 0},
		{"bytewise", func(b []byte) [][]byte { return [][]byte{b} }, 1},
		{fmt.Sprintf("random-%d", seed), func(b []byte) [][]byte {
			r := rand.New(rand.NewPCG(seed, uint64(len(b))))
			var out [][]byte
			for len(b) > 0 {
				n := min(len(b), 1+r.IntN(700))
				out = append(out, b[:n])
				b = b[n:]
			}
			return out
		}, 0},
	}
}

// feed gives the device b in the splitter's pieces and returns every event but need_more.
func (d *device) feed(b []byte, s splitter) []string {
	var evs []string
	for _, p := range s.cut(b) {
		evs = append(evs, events(d.do("feed", hx(p), fmt.Sprint(s.step)))...)
		if n := len(evs); n > 0 && isFinal(evs[n-1]) {
			break
		}
	}
	return evs
}

func isFinal(ev string) bool {
	return ev == "done" || ev == "up_to_date" || strings.HasPrefix(ev, "retry:") || strings.HasPrefix(ev, "error:")
}

// startVectorDevice sets a device up as session v describes (class replaced when not empty)
// and checks its Hello.
func startVectorDevice(t *testing.T, v *sessionVector, class string) *device {
	t.Helper()
	d := startDevice(t, v.MaxPayload)
	if class == "" {
		class = v.Class
	}
	if got := d.configure(deviceConfig{id: v.DeviceID, class: class, psk: mustHex(t, v.PSK),
		maxPayload: v.MaxPayload, slot: vectorSlot, ackEvery: vectorAckEvery}); got != "ok" {
		t.Fatalf("fota_init: %s", got)
	}
	d.restartVectorSession(v)
	return d
}

// restartVectorSession gives the device session v's stored state, slot and RNG, starts a
// session and checks its Hello. With a resume point, a download of the image resume_sha256
// (of the offered size) was cut after resume_offset durable bytes: they are in the slot, the
// rest of its sector erased, so the Hello names exactly that offset (PROTOCOL.md 4.1).
func (d *device) restartVectorSession(v *sessionVector) {
	t := d.t
	t.Helper()
	st := storedState{boot: v.BootCounter - 1, running: v.RunningSeq}
	if v.ResumeOffset > 0 {
		st.resume = image{v.Offer.Seq, v.Offer.Size, mustHex(t, v.ResumeSHA256)}
		st.durable = v.ResumeOffset
	}
	// An erased slot as far as any vector image reaches, then the durable prefix.
	d.do("flash", "0", hx(bytes.Repeat([]byte{0xff}, 3*4096)))
	if img := mustHex(t, v.Image); v.ResumeOffset > 0 && int(v.ResumeOffset) <= len(img) {
		d.do("flash", "0", hx(img[:v.ResumeOffset]))
	}
	d.setState(st)
	d.do("random", v.NdRandom)
	d.do("init")
	if got, want := d.do("start"), []string{"send:" + v.Wire.Hello}; !slices.Equal(got, want) {
		t.Fatalf("start: got %q\nwant %q", got, want)
	}
}

func TestVectorSessionsReplayByteForByte(t *testing.T) {
	f := loadVectors(t)
	for i := range f.Sessions {
		v := &f.Sessions[i]
		for _, s := range splitters(uint64(i) + 1) {
			for _, early := range []bool{false, true} {
				name := v.Name + "/" + s.name
				if early {
					name += "/early"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					replaySession(t, v, s, early)
				})
			}
		}
	}
}

// vectorEvents is what the device answers session v's Offer with: the app's OFFER event first
// for an acceptable image, then the Accept, and a final event for a refusal.
func vectorEvents(t *testing.T, v *sessionVector) []string {
	accept := "send:" + v.Wire.Accept
	switch {
	case v.Offer.Status == 1:
		return []string{accept, "up_to_date"}
	case v.Offer.Status == 2:
		return []string{accept, fmt.Sprintf("retry:%d", v.Offer.RetryAfter)}
	case v.AcceptCode == 5:
		return []string{accept, "error:rollback"}
	case v.AcceptCode == 15:
		return []string{accept, "error:declined"} // a stale resume point (4.1)
	case v.AcceptCode != 0:
		t.Fatalf("vector with accept_code %d: not covered here", v.AcceptCode)
	}
	return []string{"offer", accept}
}

// vectorStream is session v's data frames, all of which the gateway may send right behind the
// Offer, before the Accept (PROTOCOL.md 4.4): no vector image is larger than that window.
func vectorStream(t *testing.T, v *sessionVector) []byte {
	var stream []byte
	for _, frame := range v.Wire.Data {
		stream = append(stream, mustHex(t, frame)...)
	}
	if len(v.Wire.Data) > 0 && len(v.Wire.Data) > protocol.EarlyFrames(v.Offer.Chunk) {
		t.Fatalf("%s: more than the early frames", v.Name)
	}
	return stream
}

// replaySession feeds session v's Offer and then its data frames, or with early all of them as
// one stream, as the gateway sends them before it has read the Accept (PROTOCOL.md 4.4): the
// device answers the Offer and then takes the frames that arrived behind it.
func replaySession(t *testing.T, v *sessionVector, s splitter, early bool) {
	d := startVectorDevice(t, v, "")
	want := vectorEvents(t, v)
	stream := vectorStream(t, v)
	var got []string
	if early && want[0] == "offer" {
		got = d.feed(append(mustHex(t, v.Wire.Offer), stream...), s)
	} else {
		got = d.feed(mustHex(t, v.Wire.Offer), s)
		if !slices.Equal(got, want) {
			t.Fatalf("offer: got %q\nwant %q", got, want)
		}
		if want[0] == "offer" {
			got = append(got, d.feed(stream, s)...)
		}
	}
	if want[0] != "offer" {
		if v.AcceptCode == 15 {
			checkStaleResumeForgotten(t, d, v)
		}
		return
	}
	checkVectorInstall(t, d, v, got)
}

// checkVectorInstall checks the events of a whole session from its Offer and what the device
// holds after it.
func checkVectorInstall(t *testing.T, d *device, v *sessionVector, got []string) {
	t.Helper()
	progress := slices.DeleteFunc(slices.Clone(got), func(e string) bool { return e != "progress" })
	got = slices.DeleteFunc(got, func(e string) bool { return e == "progress" })
	if want := []string{"offer", "send:" + v.Wire.Accept, "send:" + v.Wire.Ack, "send:" + v.Wire.Report, "done"}; !slices.Equal(got, want) {
		t.Fatalf("session: got %q\nwant %q", got, want)
	}
	if len(progress) != len(v.Wire.Data)-1 {
		t.Errorf("%d progress events for %d Data frames", len(progress), len(v.Wire.Data)-1)
	}

	img := mustHex(t, v.Image)
	if got := d.slot(len(img)); !slices.Equal(got, img) {
		t.Fatal("the slot does not hold the image")
	}
	want2 := storedState{boot: v.BootCounter, running: v.RunningSeq,
		pending: image{v.Offer.Seq, v.Offer.Size, mustHex(t, v.Offer.SHA256)}}
	if got := d.state(); !sameState(got, want2) {
		t.Fatalf("state: got %+v\nwant %+v", got, want2)
	}
}

// checkStaleResumeForgotten: after declining an offer whose ID is its resume point's but whose
// digest is not, the device holds no resume point, and its next Hello names none.
func checkStaleResumeForgotten(t *testing.T, d *device, v *sessionVector) {
	t.Helper()
	want := storedState{boot: v.BootCounter, running: v.RunningSeq}
	if got := d.state(); !sameState(got, want) {
		t.Fatalf("state after the stale refusal: got %+v\nwant %+v", got, want)
	}
	d.do("init")
	a := d.do("start")
	if len(a) != 1 {
		t.Fatalf("start: %q", a)
	}
	h, err := protocol.ParseHello(unhx(t, strings.TrimPrefix(a[0], "send:")))
	if err != nil {
		t.Fatal(err)
	}
	if h.ResumeOffset != 0 || h.ResumeID != [protocol.ResumeIDSize]byte{} {
		t.Fatalf("the Hello after a stale refusal names %d of %x", h.ResumeOffset, h.ResumeID)
	}
}

// Offer and early frames arrive as one stream (PROTOCOL.md 4.4) that TCP may cut anywhere:
// split into two pieces at every byte of the Offer and the first frames, and of the last
// frames, each session still installs with the vectors' messages. One device runs them all.
func TestVectorEarlyFramesSplitAtEveryByte(t *testing.T) {
	f := loadVectors(t)
	for i := range f.Sessions {
		v := &f.Sessions[i]
		if vectorEvents(t, v)[0] != "offer" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			offer := mustHex(t, v.Wire.Offer)
			in := append(offer, vectorStream(t, v)...)
			d := startVectorDevice(t, v, "")
			for k := 1; k < len(in); k++ {
				if k > len(offer)+200 && k < len(in)-200 {
					k = len(in) - 200
				}
				if k > 1 {
					d.restartVectorSession(v)
				}
				whole := splitters(0)[0]
				got := d.feed(in[:k], whole)
				got = append(got, d.feed(in[k:], whole)...)
				checkVectorInstall(t, d, v, got)
			}
		})
	}
}

func sameState(a, b storedState) bool {
	same := func(x, y image) bool { return x.seq == y.seq && x.size == y.size && slices.Equal(x.digest, y.digest) }
	return a.boot == b.boot && a.running == b.running && a.durable == b.durable &&
		same(a.resume, b.resume) && same(a.pending, b.pending)
}

func TestVectorNegativesAreRejected(t *testing.T) {
	f := loadVectors(t)
	sessions := map[string]*sessionVector{}
	for i := range f.Sessions {
		sessions[f.Sessions[i].Name] = &f.Sessions[i]
	}
	n := 0
	for i, nv := range f.Negative {
		if nv.Role != "device" {
			continue // the gateway's to reject (protocol/ and gateway/ test those)
		}
		n++
		v := sessions[nv.Session]
		if v == nil {
			t.Fatalf("%s: no session %q", nv.Name, nv.Session)
		}
		for _, s := range splitters(uint64(i) + 100) {
			t.Run(nv.Name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				d := startVectorDevice(t, v, nv.Class)
				got := d.feed(mustHex(t, nv.Inbound), s)
				if len(got) == 0 || !isFinal(got[len(got)-1]) {
					// Out of bytes inside or before a frame: the connection ends.
					got = append(got, d.do("close")...)
				}
				if last := got[len(got)-1]; last != "error:"+nv.Expect {
					t.Fatalf("events %q, want the last to be error:%s", got, nv.Expect)
				}
				if slices.Contains(got, "done") {
					t.Fatal("installed an image from a negative vector")
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no device-role negative vectors")
	}
}
