package peers

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/devicelib"
)

func TestFlashTimeChargesSectorsAndThePagesEachChunkTouches(t *testing.T) {
	erase, page := devicelib.ESP8266EraseDelay, devicelib.ESP8266PageDelay
	for _, tc := range []struct {
		size, chunk int
		want        time.Duration
	}{
		{1 << 20, 4096, 256*erase + 4096*page},         // 16 pages per write
		{1 << 20, 256, 256*erase + 4096*page},          // one page per write
		{1 << 20, 64, 256*erase + 16384*page},          // a page touched four times
		{100, 64, erase + 2*page},                      // a short last write
		{4096 + 300, 1024, 2*erase + 16*page + 2*page}, // 300 B spans two pages
	} {
		if got := FlashTime(tc.size, tc.chunk); got != tc.want {
			t.Errorf("FlashTime(%d, %d) = %v, want %v", tc.size, tc.chunk, got, tc.want)
		}
	}
}

func TestSinkKeepsTheImageAndTakesTheFlashTime(t *testing.T) {
	img := bytes.Repeat([]byte{1, 2, 3}, 3000) // 9000 B: 3 sectors, not a chunk multiple
	s := newSink(FetchConfig{Chunk: 512}, 0)
	t0 := time.Now()
	for off := 0; off < len(img); off += 700 { // reads of any size
		s.write(img[off:min(off+700, len(img))])
	}
	if got := s.finish(); !bytes.Equal(got, img) || time.Since(t0) > 100*time.Millisecond {
		t.Fatalf("without flash timing: %d bytes, %v", len(got), time.Since(t0))
	}
	timed := newSink(FetchConfig{Chunk: 512, FlashTiming: true}, 0)
	t0 = time.Now()
	for off := 0; off < len(img); off += 700 {
		timed.write(img[off:min(off+700, len(img))])
	}
	got := timed.finish()
	// At least what the model charges; sleeping may take longer on a loaded machine, never less.
	if min := FlashTime(len(img), 512); !bytes.Equal(got, img) || time.Since(t0) < min {
		t.Fatalf("with flash timing: %d bytes in %v, want the image in at least %v", len(got), time.Since(t0), min)
	}
	if timed.erasedTo != 3*SectorSize || timed.written != len(img) {
		t.Fatalf("erased to %d, written %d", timed.erasedTo, timed.written)
	}
}

func TestPacerSleepsWhatIsOwedInSum(t *testing.T) {
	var p pacer
	t0 := time.Now()
	for range 100 {
		p.sleep(100 * time.Microsecond) // 10 ms in all, in steps far below a timer's resolution
	}
	p.flush()
	if el := time.Since(t0); el < 10*time.Millisecond-time.Millisecond {
		t.Fatalf("slept %v for 10 ms owed", el)
	}
	if p.owed > 0 {
		t.Fatalf("still owes %v after flush", p.owed)
	}
}

func TestTimedStoreChargesAnEraseAndAPagePerSave(t *testing.T) {
	var p pacer
	st := timedStore{&devicelib.MemStore{}, &p}
	p.owed = -time.Hour // credit: nothing sleeps, the charge shows in what is owed
	if err := st.Save(devicelib.State{Class: "c"}); err != nil {
		t.Fatal(err)
	}
	if got := p.owed + time.Hour; got != devicelib.ESP8266EraseDelay+devicelib.ESP8266PageDelay {
		t.Fatalf("a save charged %v", got)
	}
}

func TestFleetDevicesKnowEachDeviceByItsOwnKeyAndNoOthers(t *testing.T) {
	f := fleetDevices{n: 3}
	d, ok := f.LookupDevice(FleetID(2))
	if !ok || d.PSK != FleetPSK(2) || d.Class != FleetClass {
		t.Fatalf("device 2: %v %v", d, ok)
	}
	if FleetPSK(1) == FleetPSK(2) {
		t.Fatal("two devices share a key")
	}
	for _, id := range []string{FleetID(3), "sweep--1", "sweep-01", "sweep-x", "bench-dev", ""} {
		if _, ok := f.LookupDevice(id); ok {
			t.Errorf("%q is provisioned", id)
		}
	}
}

func TestHTTPSDeviceRefusesAServerWithAnotherCertificate(t *testing.T) {
	srv, err := HTTPS{}.Serve("127.0.0.1:0", []byte("image"), NewMeter(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, other, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := (HTTPS{}).Fetch(ctx, FetchConfig{Addr: srv.Addr(), Info: other, Chunk: 512}); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("fetch from a server with another certificate: %v", err)
	}
	if got, err := (HTTPS{}).Fetch(ctx, FetchConfig{Addr: srv.Addr(), Info: srv.Info(), Chunk: 512}); err != nil || string(got.Image) != "image" {
		t.Fatalf("fetch with the server's own certificate: %q, %v", got.Image, err)
	}
}
