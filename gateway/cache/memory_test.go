package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

var _ protocol.ImageBytes = (*Entry)(nil) // sessions seal straight from a held image

// held opens d and returns its bytes in memory (nil when not held), after checking that
// ReadAt serves the same image either way.
func held(t *testing.T, c *Cache, d [32]byte, want []byte) []byte {
	t.Helper()
	en, err := c.Open(d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer en.Close()
	got, err := io.ReadAll(io.NewSectionReader(en, 0, en.Size()))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt: %d bytes, %v; want the %d-byte image", len(got), err, len(want))
	}
	return en.ImageBytes()
}

func TestHeldImageIsServedFromMemory(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(5000, 60)
	put(t, c, b, d)
	if mem := held(t, c, d, b); mem != nil {
		t.Fatal("an image is held in memory without HoldInMemory")
	}
	c.HoldInMemory(1 << 20)
	if mem := held(t, c, d, b); !bytes.Equal(mem, b) {
		t.Fatalf("held image: %d bytes, want the %d-byte image", len(mem), len(b))
	}
	// From now on no session touches the file.
	if err := os.Remove(c.path(d)); err != nil {
		t.Fatal(err)
	}
	if mem := held(t, c, d, b); !bytes.Equal(mem, b) {
		t.Fatal("held image not served from memory once its file is gone")
	}
}

func TestHoldingAnImageRehashesItsFile(t *testing.T) {
	c, logs := open(t, t.TempDir(), 0)
	b, d := image(5000, 61)
	put(t, c, b, d)
	f, err := os.OpenFile(c.path(d), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[4000] ^ 1}, 4000); err != nil { // same size: Open's size check passes
		t.Fatal(err)
	}
	f.Close()
	c.HoldInMemory(1 << 20)
	if _, err := c.Open(d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a rotted image to hold: %v, want ErrCorrupt", err)
	}
	assertInvisible(t, c, d)
	if logs.FilterMessageSnippet("quarantined").FilterFieldKey("reason").Len() != 1 {
		t.Fatal("quarantine not logged with a reason")
	}
}

func TestMemoryBudgetIsFreedWhenAnImageLeaves(t *testing.T) {
	c, _ := open(t, t.TempDir(), 2000)
	c.HoldInMemory(1500)
	a, da := image(1000, 62)
	b, db := image(1000, 63)
	put(t, c, a, da)
	put(t, c, b, db)
	if held(t, c, da, a) == nil {
		t.Fatal("first image not held")
	}
	open, err := c.Open(da) // a session keeps a's copy, and so its room
	if err != nil {
		t.Fatal(err)
	}
	if held(t, c, db, b) != nil {
		t.Fatal("second image held past the 1500-byte budget")
	}
	open.Close()
	// b is now used more recently than a, so the third image evicts a, and a's memory with it.
	x, dx := image(1000, 64)
	put(t, c, x, dx)
	if c.Has(da) {
		t.Fatal("least recently used image kept")
	}
	if held(t, c, db, b) == nil {
		t.Fatal("evicted image's memory not given back: the second image is still not held")
	}
}

// Sessions that arrive together after a start all get the image, and it is held once.
func TestImageOpenedByManyAtOnceIsHeldOnce(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(200<<10, 65)
	put(t, c, b, d)
	c.HoldInMemory(1 << 20)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			en, err := c.Open(d)
			if err != nil {
				errs <- err
				return
			}
			defer en.Close()
			got := make([]byte, len(b))
			if _, err := en.ReadAt(got, 0); err != nil || !bytes.Equal(got, b) {
				errs <- errors.New("wrong image read")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if mem := held(t, c, d, b); !bytes.Equal(mem, b) {
		t.Fatal("image not held after the rush")
	}
	c.mu.Lock()
	used, loading := c.memUsed, c.entries[d].loading
	c.mu.Unlock()
	if used != int64(len(b)) || loading {
		t.Fatalf("memory held %d bytes (loading %v), want the one %d-byte image", used, loading, len(b))
	}
}

// The cache keeps on disk many more images than devices still fetch: one that no session has
// open gives its room in memory to one that needs it, the least recently used first, and
// one that a session has open keeps it.
func TestHeldImageNoSessionHasOpenMakesRoomForAnother(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	c.HoldInMemory(2500)
	a, da := image(1000, 66)
	b, db := image(1000, 67)
	x, dx := image(1000, 68)
	put(t, c, a, da)
	put(t, c, b, db)
	put(t, c, x, dx)
	if held(t, c, da, a) == nil || held(t, c, db, b) == nil {
		t.Fatal("first two images not held")
	}
	openA, err := c.Open(da) // a is now used more recently than b, and open
	if err != nil {
		t.Fatal(err)
	}
	defer openA.Close()
	if held(t, c, dx, x) == nil {
		t.Fatal("third image not held: an image no session has open keeps its room")
	}
	openX, err := c.Open(dx)
	if err != nil {
		t.Fatal(err)
	}
	defer openX.Close()
	// a and x are open: b finds no room to make, and takes none.
	if held(t, c, db, b) != nil {
		t.Fatal("second image held in the room of images sessions have open")
	}
	c.mu.Lock()
	used, aHeld, xHeld := c.memUsed, c.entries[da].mem != nil, c.entries[dx].mem != nil
	c.mu.Unlock()
	if used != 2000 || !aHeld || !xHeld {
		t.Fatalf("memory held %d bytes (a %v, x %v), want a and x: 2000", used, aHeld, xHeld)
	}
}
