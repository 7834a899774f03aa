package devicelib_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/devicelib/internal/testgw"
	"github.com/fotagate/fotagate/protocol"
)

const (
	testID     = "dev-1"
	testClass  = "esp8266-a"
	sectorSize = 4096
	slotSize   = 128 << 10
)

var testPSK = [protocol.KeySize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func testKeys() map[string][protocol.KeySize]byte {
	return map[string][protocol.KeySize]byte{testID: testPSK}
}

// seeded is a deterministic RNG for images and nonces, so failures reproduce.
type seeded struct{ r *rand.ChaCha8 }

func newSeeded(seed uint64) *seeded {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return &seeded{rand.NewChaCha8(s)}
}

func (s *seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

func randomImage(n int, seed uint64) []byte {
	img := make([]byte, n)
	newSeeded(seed).Read(img)
	return img
}

// sim is one simulated device over memory.
type sim struct {
	flash *devicelib.MemFlash
	store *devicelib.MemStore
	cfg   devicelib.Config
}

func newSim(t testing.TB, maxPayload int) *sim {
	t.Helper()
	f, err := devicelib.NewMemFlash(slotSize, sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{flash: f, store: &devicelib.MemStore{}}
	// A durable point per sector, finer than the default, so that small test images
	// exercise resume; TestDefaultAckEvery covers the default.
	s.cfg = devicelib.Config{ID: testID, PSK: testPSK, Class: testClass, MaxPayload: maxPayload,
		Flash: f, Store: s.store, Rand: newSeeded(99), AckEvery: sectorSize}
	return s
}

// device builds a Device over the sim's flash and store, as a reboot would.
func (s *sim) device(t testing.TB) *devicelib.Device {
	t.Helper()
	d, err := devicelib.New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (s *sim) state(t testing.TB) devicelib.State {
	t.Helper()
	st, err := s.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// slot reads the first n bytes of the sim's flash.
func (s *sim) slot(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := s.flash.Read(0, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// update runs one session of d against gw and returns the device's result and what the
// gateway saw.
func update(t testing.TB, gw *testgw.Gateway, d *devicelib.Device) (devicelib.Result, testgw.Session, error) {
	t.Helper()
	c, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, uerr := d.Update(ctx, c)
	c.Close()
	return res, gw.Next(t), uerr
}

// checkSlot fails the test unless the slot starts with img.
func checkSlot(t testing.TB, s *sim, img []byte) {
	t.Helper()
	got := s.slot(t, len(img))
	if !bytes.Equal(got, img) {
		i := 0
		for i < len(img) && got[i] == img[i] {
			i++
		}
		t.Fatalf("slot differs from the image at byte %d of %d", i, len(img))
	}
}
