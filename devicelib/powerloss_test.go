package devicelib_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/devicelib/internal/testgw"
	"github.com/fotagate/fotagate/protocol"
)

var errPowerCut = errors.New("power cut")

// mutating reports whether op changes the flash: the operations a power cut can tear.
func mutating(op devicelib.Op) bool { return op.Kind != devicelib.OpRead }

// TestPowerLossAtAnyFlashOperationEndsInstalled cuts the power at the k-th erase, write or
// sync of an update (tearing that operation), reboots the device over the same flash and
// state, and updates again: whatever k, the device ends with exactly the image, never with a
// pending partial one, and its boot counter never repeats.
func TestPowerLossAtAnyFlashOperationEndsInstalled(t *testing.T) {
	img := randomImage(24<<10+5, 20)
	m := testgw.Image(img, testClass, 2, nil)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, m)
	for _, ackEvery := range []int{sectorSize, 1024} {
		t.Run(fmt.Sprint("ack_every_", ackEvery), func(t *testing.T) {
			// Count the operations of an undisturbed update.
			s := newSim(t, 512)
			s.cfg.AckEvery = ackEvery
			ops := 0
			s.flash.FailAt = func(op devicelib.Op) error {
				if mutating(op) {
					ops++
				}
				return nil
			}
			if res, _, err := update(t, gw, s.device(t)); err != nil || res.Outcome != devicelib.Installed {
				t.Fatalf("%v %+v", err, res)
			}
			if ops < 50 {
				t.Fatalf("only %d flash operations; the image is too small to test much", ops)
			}
			for k := 1; k <= ops; k++ { // every operation: cheap at this size
				powerLossAt(t, gw, img, ackEvery, k)
			}
		})
	}
}

func powerLossAt(t *testing.T, gw *testgw.Gateway, img []byte, ackEvery, k int) {
	t.Helper()
	s := newSim(t, 512)
	s.cfg.AckEvery = ackEvery
	n := 0
	s.flash.FailAt = func(op devicelib.Op) error {
		if mutating(op) {
			if n++; n == k {
				return errPowerCut
			}
		}
		return nil
	}
	var counters []uint32
	res, gs, err := update(t, gw, s.device(t))
	if !errors.Is(err, errPowerCut) || !errors.Is(err, protocol.ErrFlash) || res.Outcome != devicelib.Failed {
		t.Fatalf("op %d: want the power cut, got %v %+v", k, err, res)
	}
	counters = append(counters, gs.BootCounter())
	if st := s.state(t); !st.Pending.IsZero() {
		t.Fatalf("op %d: a torn update left a pending image %+v", k, st.Pending)
	}

	s.flash.FailAt = nil
	d := s.device(t) // the reboot
	if err := d.Reboot(); err != nil {
		t.Fatalf("op %d: reboot: %v", k, err)
	}
	res, gs, err = update(t, gw, d)
	if err != nil || res.Outcome != devicelib.Installed {
		t.Fatalf("op %d: after the power cut: %v %+v", k, err, res)
	}
	counters = append(counters, gs.BootCounter())
	checkSlot(t, s, img)
	if err := d.Reboot(); err != nil || d.Running() != 2 {
		t.Fatalf("op %d: reboot into the image: %v, running %d", k, err, d.Running())
	}
	if counters[1] <= counters[0] {
		t.Fatalf("op %d: boot counters %v", k, counters)
	}
}

// TestPowerLossAtAnyStateSaveEndsInstalled does the same for the state saves: a failed save
// leaves the previous state, as an atomic store's power cut does.
func TestPowerLossAtAnyStateSaveEndsInstalled(t *testing.T) {
	img := randomImage(24<<10+5, 21)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	probe := newSim(t, 512)
	if _, _, err := update(t, gw, probe.device(t)); err != nil {
		t.Fatal(err)
	}
	saves := probe.store.Saves()
	for k := 1; k <= saves; k++ {
		s := newSim(t, 512)
		s.store.FailSave = func(n int) error {
			if n == k {
				return errPowerCut
			}
			return nil
		}
		res, gs, err := update(t, gw, s.device(t))
		if !errors.Is(err, errPowerCut) {
			t.Fatalf("save %d of %d: want the power cut, got %v %+v", k, saves, err, res)
		}
		st, _ := s.store.Load() // nothing saved yet when the first save failed
		first := st.BootCounter
		if k > 1 && (gs.Hello == nil || gs.BootCounter() != first) {
			t.Fatalf("save %d: the Hello used counter %v, the store has %d", k, gs.Hello, first)
		}
		s.store.FailSave = nil
		d := s.device(t)
		if err := d.Reboot(); err != nil {
			t.Fatal(err)
		}
		res, gs, err = update(t, gw, d)
		if err != nil || res.Outcome != devicelib.Installed || gs.BootCounter() <= first {
			t.Fatalf("save %d: after the power cut: %v %+v, counter %d after %d", k, err, res, gs.BootCounter(), first)
		}
		checkSlot(t, s, img)
	}
}
