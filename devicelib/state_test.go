package devicelib_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fotagate/fotagate/devicelib"
)

func sampleState() devicelib.State {
	return devicelib.State{
		BootCounter: 41, Class: testClass,
		Running: devicelib.Image{Seq: 3, Size: 1000, Digest: sha256.Sum256([]byte("a"))},
		Pending: devicelib.Image{Seq: 4, Size: 2000, Digest: sha256.Sum256([]byte("b"))},
		Resume: devicelib.Resume{Image: devicelib.Image{Seq: 5, Size: 3000, Digest: sha256.Sum256([]byte("c"))},
			Durable: 2048},
	}
}

func TestFileStoreSavesAtomicallyWithMode0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dev.state")
	fs := devicelib.NewFileStore(path)
	if _, err := fs.Load(); !errors.Is(err, devicelib.ErrNoState) {
		t.Fatalf("missing file: %v", err)
	}
	st := sampleState()
	if err := fs.Save(st); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil || before.Mode().Perm() != 0o600 || before.Size() != int64(devicelib.StateSize) {
		t.Fatalf("state file %v, %v", before, err)
	}
	st.BootCounter++
	if err := fs.Save(st); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Fatal("the state file was rewritten in place, not replaced by a rename")
	}
	if after.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v after the second save", after.Mode())
	}
	if got, err := fs.Load(); err != nil || got != st {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, st)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %v; the temporary files should be gone", ents)
	}
}

func TestFileStoreDetectsCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.state")
	fs := devicelib.NewFileStore(path)
	if err := fs.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"flipped_bit_in_running_seq", flip(good, 8+4+1+16+3)},
		{"flipped_bit_in_checksum", flip(good, len(good)-1)},
		{"truncated", good[:len(good)-1]},
		{"longer", append(append([]byte{}, good...), 0)},
		{"empty", nil},
		{"other_file", []byte("{\"running\": 1}\n")},
	} {
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Load(); !errors.Is(err, devicelib.ErrCorruptState) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x01
	return c
}

func TestDeviceRefusesCorruptedStateInsteadOfStartingOver(t *testing.T) {
	s := newSim(t, 1024)
	if err := s.store.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	s.store.Corrupt(20, 0x80)
	if _, err := devicelib.New(s.cfg); !errors.Is(err, devicelib.ErrCorruptState) {
		t.Fatalf("New over a corrupted state: %v", err)
	}

	path := filepath.Join(t.TempDir(), "dev.state")
	os.WriteFile(path, make([]byte, devicelib.StateSize), 0o600)
	s.cfg.Store = devicelib.NewFileStore(path)
	if _, err := devicelib.New(s.cfg); !errors.Is(err, devicelib.ErrCorruptState) {
		t.Fatalf("New over a zeroed state file: %v", err)
	}
}

func TestDeviceRefusesStateOfAnotherClass(t *testing.T) {
	s := newSim(t, 1024)
	st := sampleState()
	st.Class = "esp32-b"
	s.store.Save(st)
	if _, err := devicelib.New(s.cfg); !errors.Is(err, devicelib.ErrStateMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestDeviceNoticesAStateThatVanished(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.state")
	s := newSim(t, 1024)
	s.cfg.Store = devicelib.NewFileStore(path)
	if err := s.cfg.Store.Save(sampleState()); err != nil {
		t.Fatal(err)
	}
	d := s.device(t)
	os.Remove(path)
	if err := d.Reboot(); !errors.Is(err, devicelib.ErrCorruptState) {
		t.Fatalf("reboot after the state file vanished: %v", err)
	}
}

func TestStateSaveRefusesInvalidState(t *testing.T) {
	st := sampleState()
	st.Resume.Durable = st.Resume.Size + 1
	if err := (&devicelib.MemStore{}).Save(st); err == nil {
		t.Fatal("saved a durable offset past the image")
	}
	st = sampleState()
	st.Class = ""
	if err := devicelib.NewFileStore(filepath.Join(t.TempDir(), "s")).Save(st); err == nil {
		t.Fatal("saved a state without a class")
	}
}
