package devicelib_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fotagate/fotagate/devicelib"
)

// flashes builds each Flash implementation for the same tests.
func flashes(t *testing.T, size int64, sector int) map[string]devicelib.Flash {
	t.Helper()
	mem, err := devicelib.NewMemFlash(size, sector)
	if err != nil {
		t.Fatal(err)
	}
	file, err := devicelib.OpenFileFlash(filepath.Join(t.TempDir(), "slot"), size, sector)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	return map[string]devicelib.Flash{"mem": mem, "file": file}
}

func TestFlashEnforcesNORRules(t *testing.T) {
	for name, f := range flashes(t, 16<<10, 4096) {
		t.Run(name, func(t *testing.T) {
			all := make([]byte, f.Size())
			if err := f.Read(0, all); err != nil || bytes.Count(all, []byte{devicelib.Erased}) != len(all) {
				t.Fatalf("a new flash is not erased: %v", err)
			}
			word := []byte{1, 2, 3, 4}
			if err := f.Write(8, word); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				off  int64
				p    []byte
				want error
			}{
				{"over_written_bytes", 8, word, devicelib.ErrNotErased},
				{"overlapping_written_bytes", 4, make([]byte, 8), devicelib.ErrNotErased},
				{"misaligned_offset", 13, word, devicelib.ErrMisaligned},
				{"misaligned_length", 16, word[:3], devicelib.ErrMisaligned},
				{"past_the_end", f.Size() - 4, make([]byte, 8), devicelib.ErrOutOfRange},
				{"negative_offset", -4, word, devicelib.ErrOutOfRange},
			} {
				if err := f.Write(tc.off, tc.p); !errors.Is(err, tc.want) {
					t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
				}
			}
			if err := f.Erase(4); !errors.Is(err, devicelib.ErrOutOfRange) {
				t.Errorf("erasing sector 4 of 4: %v", err)
			}
			if err := f.Read(f.Size()-2, make([]byte, 4)); !errors.Is(err, devicelib.ErrOutOfRange) {
				t.Errorf("reading past the end: %v", err)
			}
			// Writing erased bytes (the padding of a last word) over erased bytes is allowed,
			// and an erase makes written bytes writable again.
			if err := f.Write(12, []byte{0xFF, 0xFF, 0xFF, 0xFF}); err != nil {
				t.Errorf("writing erased bytes: %v", err)
			}
			if err := f.Erase(0); err != nil {
				t.Fatal(err)
			}
			if err := f.Write(8, word); err != nil {
				t.Errorf("writing after an erase: %v", err)
			}
			got := make([]byte, 4)
			if err := f.Read(8, got); err != nil || !bytes.Equal(got, word) {
				t.Errorf("read back %x, %v", got, err)
			}
			if err := f.Sync(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFlashGeometryIsChecked(t *testing.T) {
	for _, tc := range []struct {
		size   int64
		sector int
	}{{0, 4096}, {4096, 0}, {4096, 6}, {6000, 4096}, {-4096, 4096}} {
		if _, err := devicelib.NewMemFlash(tc.size, tc.sector); err == nil {
			t.Errorf("MemFlash of %d bytes, sectors of %d: no error", tc.size, tc.sector)
		}
		if _, err := devicelib.OpenFileFlash(filepath.Join(t.TempDir(), "slot"), tc.size, tc.sector); err == nil {
			t.Errorf("FileFlash of %d bytes, sectors of %d: no error", tc.size, tc.sector)
		}
	}
}

func TestFileFlashPersistsAndRefusesAnotherSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slot")
	f, err := devicelib.OpenFileFlash(path, 8192, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Write(4096, []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 8192 {
		t.Fatalf("slot file %v, %v", fi, err)
	}
	f, err = devicelib.OpenFileFlash(path, 8192, 4096)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	f.Read(4096, got)
	f.Close()
	if string(got) != "abcd" {
		t.Fatalf("reopened slot holds %q", got)
	}
	if _, err := devicelib.OpenFileFlash(path, 16384, 4096); err == nil {
		t.Fatal("opened an 8 KiB slot file as 16 KiB")
	}
}

func TestMemFlashFailAtTearsTheOperation(t *testing.T) {
	f, _ := devicelib.NewMemFlash(8192, 4096)
	errCut := errors.New("cut")
	var seen []devicelib.Op
	f.FailAt = func(op devicelib.Op) error {
		seen = append(seen, op)
		if op.Kind == devicelib.OpWrite {
			return errCut
		}
		return nil
	}
	p := bytes.Repeat([]byte{0}, 16)
	if err := f.Write(0, p); !errors.Is(err, errCut) {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, 16)
	f.Read(0, got)
	if !bytes.Equal(got[:8], p[:8]) || bytes.Count(got[8:], []byte{devicelib.Erased}) != 8 {
		t.Fatalf("torn write left %x, want its first half programmed", got)
	}
	f.Write(0, p) // refused as not erased, before FailAt is asked
	f.FailAt = func(op devicelib.Op) error {
		if op.Kind == devicelib.OpErase {
			return errCut
		}
		return nil
	}
	if err := f.Erase(0); !errors.Is(err, errCut) {
		t.Fatalf("erase: %v", err)
	}
	f.Read(0, got)
	if bytes.Count(got, []byte{devicelib.Erased}) != 16 {
		t.Fatalf("torn erase kept %x at the start of the sector", got)
	}
	if len(seen) != 2 || seen[0].Kind != devicelib.OpWrite || seen[0].N != 1 || seen[1].Kind != devicelib.OpRead || seen[1].N != 2 {
		t.Fatalf("ops seen: %+v", seen)
	}
	if st := f.Stats(); st.Writes != 1 || st.Erases != 1 || st.BytesWritten != 8 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTimedFlashChargesEraseAndPages(t *testing.T) {
	mem, _ := devicelib.NewMemFlash(8192, 4096)
	var slept time.Duration
	f := devicelib.WithESP8266Timing(mem)
	f.Sleep = func(d time.Duration) { slept += d }
	f.Erase(1)
	f.Write(200, make([]byte, 100)) // bytes 200..299: pages 0 and 1
	f.Write(512, make([]byte, 256)) // exactly page 2
	want := devicelib.ESP8266EraseDelay + 3*devicelib.ESP8266PageDelay
	if slept != want {
		t.Fatalf("slept %v, want %v", slept, want)
	}
}
