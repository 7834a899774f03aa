package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// image returns n deterministic pseudo-random bytes and their SHA-256.
func image(n int, seed uint64) ([]byte, [32]byte) {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, sha256.Sum256(b)
}

func open(t *testing.T, dir string, capBytes int64) (*Cache, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := Open(dir, capBytes, zap.New(core))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c, logs
}

func put(t *testing.T, c *Cache, b []byte, d [32]byte) {
	t.Helper()
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if _, err := p.Write(b[p.Offset():]); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := p.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func readAll(t *testing.T, c *Cache, d [32]byte) []byte {
	t.Helper()
	en, err := c.Open(d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer en.Close()
	b, err := io.ReadAll(io.NewSectionReader(en, 0, en.Size()))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func assertInvisible(t *testing.T, c *Cache, d [32]byte) {
	t.Helper()
	if c.Has(d) {
		t.Error("Has reports an uncommitted image")
	}
	if _, err := c.Open(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open of an uncommitted image: got %v, want ErrNotFound", err)
	}
	for _, info := range c.List() {
		if info.Digest == d {
			t.Error("List shows an uncommitted image")
		}
	}
}

func TestCommittedImageSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, d := image(10_000, 1)
	c, _ := open(t, dir, 0)
	put(t, c, b, d)
	if !bytes.Equal(readAll(t, c, d), b) {
		t.Fatal("read back differs")
	}

	c2, _ := open(t, dir, 0) // the "restart"
	if !c2.Has(d) {
		t.Fatal("image lost across restart")
	}
	if got := readAll(t, c2, d); !bytes.Equal(got, b) {
		t.Fatal("read back after restart differs")
	}
	if s := c2.Stats(); s.Entries != 1 || s.Bytes != int64(len(b)) || s.Hits != 1 {
		t.Fatalf("stats after restart = %+v", s)
	}
	if l := c2.List(); len(l) != 1 || l[0].Digest != d || l[0].Size != int64(len(b)) {
		t.Fatalf("List = %+v", l)
	}
	if _, err := c2.Begin(d, int64(len(b))); !errors.Is(err, ErrExists) {
		t.Fatalf("Begin on a cached image: got %v, want ErrExists", err)
	}
}

func TestCommitRejectsCorruptedContentAndDeletesPartial(t *testing.T) {
	dir := t.TempDir()
	c, _ := open(t, dir, 0)
	b, d := image(5000, 2)
	bad := bytes.Clone(b)
	bad[1234] ^= 0x01
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(bad); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit of corrupted content: got %v, want ErrDigestMismatch", err)
	}
	assertInvisible(t, c, d)
	if _, err := os.Stat(c.partialPath(d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial still on disk after digest mismatch: %v", err)
	}
	p, err = c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Discard()
	if p.Offset() != 0 {
		t.Fatalf("Begin after rejected commit resumes at %d, want 0", p.Offset())
	}
}

func TestCommitRejectsShortImage(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(5000, 3)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(b[:4999]); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("Commit of a short image: got %v, want ErrSizeMismatch", err)
	}
	assertInvisible(t, c, d)
	if _, err := os.Stat(c.partialPath(d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial still on disk after size mismatch: %v", err)
	}
}

func TestWritePastSizeWritesNothing(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(100, 4)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(b[:60]); err != nil {
		t.Fatal(err)
	}
	n, err := p.Write(append(bytes.Clone(b[60:]), 0xff))
	if !errors.Is(err, ErrTooLarge) || n != 0 {
		t.Fatalf("Write past size: n=%d err=%v, want 0, ErrTooLarge", n, err)
	}
	if p.Offset() != 60 {
		t.Fatalf("Offset after refused write = %d, want 60", p.Offset())
	}
	if _, err := p.Write(b[60:]); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatalf("Commit after a refused write: %v", err)
	}
	if _, err := p.Write([]byte{1}); !errors.Is(err, ErrFinished) {
		t.Fatalf("Write after Commit: got %v, want ErrFinished", err)
	}
}

func TestAbortKeepsPartialAndBeginResumesAtOffset(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(8192, 5)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(b[:3000]); err != nil {
		t.Fatal(err)
	}
	if err := p.Abort(); err != nil {
		t.Fatal(err)
	}
	assertInvisible(t, c, d)

	p, err = c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Offset() != 3000 {
		t.Fatalf("resumed Offset = %d, want 3000", p.Offset())
	}
	if _, err := p.Write(b[p.Offset():]); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatalf("Commit of resumed download: %v", err)
	}
	if !bytes.Equal(readAll(t, c, d), b) {
		t.Fatal("resumed image differs")
	}
}

func TestPartialLeftByCrashResumesInNewCache(t *testing.T) {
	dir := t.TempDir()
	b, d := image(8192, 6)
	c, _ := open(t, dir, 0)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(b[:5000]); err != nil {
		t.Fatal(err)
	}
	// Crash: no Abort, no Commit; the process is gone and so is its Cache.
	p.f.Close()

	c2, _ := open(t, dir, 0)
	assertInvisible(t, c2, d)
	p2, err := c2.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if p2.Offset() != 5000 {
		t.Fatalf("Offset after crash = %d, want 5000", p2.Offset())
	}
	if _, err := p2.Write(b[5000:]); err != nil {
		t.Fatal(err)
	}
	if err := p2.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, c2, d), b) {
		t.Fatal("image resumed after crash differs")
	}
}

func TestCrashLeftoverWithGarbageIsRejectedAtCommit(t *testing.T) {
	dir := t.TempDir()
	b, d := image(4096, 7)
	garbage := bytes.Repeat([]byte{0}, 1000) // e.g. a file system that kept the length, not the data
	if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(d[:])+partialSuffix), garbage, 0o640); err != nil {
		t.Fatal(err)
	}
	c, _ := open(t, dir, 0)
	assertInvisible(t, c, d)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(b[p.Offset():]); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit over a garbage partial: got %v, want ErrDigestMismatch", err)
	}
	assertInvisible(t, c, d)
}

func TestPartialLongerThanSizeStartsOver(t *testing.T) {
	dir := t.TempDir()
	b, d := image(100, 8)
	if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(d[:])+partialSuffix), make([]byte, 500), 0o640); err != nil {
		t.Fatal(err)
	}
	c, _ := open(t, dir, 0)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Offset() != 0 {
		t.Fatalf("Offset = %d, want 0 for a partial longer than the image", p.Offset())
	}
	if _, err := p.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestPartialNeverVisibleWhileWriting(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(1000, 9)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	assertInvisible(t, c, d)
	if _, err := p.Write(b); err != nil { // complete, but not committed
		t.Fatal(err)
	}
	assertInvisible(t, c, d)
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("stats count a partial: %+v", s)
	}
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}
	assertInvisible(t, c, d)
	if _, err := os.Stat(c.partialPath(d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Discard left the partial on disk")
	}
}

func TestSecondWriterGetsErrBusy(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(1000, 10)
	p, err := c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(d, int64(len(b))); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Begin: got %v, want ErrBusy", err)
	}
	if err := p.Abort(); err != nil {
		t.Fatal(err)
	}
	p, err = c.Begin(d, int64(len(b)))
	if err != nil {
		t.Fatalf("Begin after Abort: %v", err)
	}
	p.Discard()
}

func TestUnknownFilesAreIgnoredAndNeverServed(t *testing.T) {
	dir := t.TempDir()
	_, d := image(10, 11)
	upper := strings.ToUpper(hex.EncodeToString(d[:]))
	for _, name := range []string{upper, "notes.txt", hex.EncodeToString(d[:]) + ".tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	c, logs := open(t, dir, 0)
	assertInvisible(t, c, d)
	if n := logs.FilterMessageSnippet("unknown file").Len(); n != 3 {
		t.Fatalf("%d warnings about unknown files, want 3", n)
	}
}

func TestEmptyFileIsQuarantinedAtOpen(t *testing.T) {
	dir := t.TempDir()
	_, d := image(10, 12)
	if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(d[:])), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	c, _ := open(t, dir, 0)
	assertInvisible(t, c, d)
}

func TestOpenQuarantinesFileThatChangedSize(t *testing.T) {
	c, _ := open(t, t.TempDir(), 0)
	b, d := image(1000, 13)
	put(t, c, b, d)
	if err := os.Truncate(c.path(d), 500); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a truncated image: got %v, want ErrCorrupt", err)
	}
	assertInvisible(t, c, d)
	if _, err := os.Stat(filepath.Join(c.dir, quarantineDir, hex.EncodeToString(d[:]))); err != nil {
		t.Fatalf("truncated image not quarantined: %v", err)
	}
}

func TestScrubQuarantinesFlippedBit(t *testing.T) {
	c, logs := open(t, t.TempDir(), 0)
	good, dg := image(3000, 14)
	b, d := image(3000, 15)
	put(t, c, good, dg)
	put(t, c, b, d)
	if q, err := c.Scrub(context.Background()); err != nil || len(q) != 0 {
		t.Fatalf("Scrub of a healthy cache = %x, %v", q, err)
	}

	f, err := os.OpenFile(c.path(d), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{b[2000] ^ 0x10}, 2000); err != nil {
		t.Fatal(err)
	}
	f.Close()

	q, err := c.Scrub(context.Background())
	if err != nil || len(q) != 1 || q[0] != d {
		t.Fatalf("Scrub = %x, %v; want the flipped image", q, err)
	}
	assertInvisible(t, c, d)
	if !c.Has(dg) {
		t.Fatal("Scrub removed a healthy image")
	}
	if _, err := os.Stat(filepath.Join(c.dir, quarantineDir, hex.EncodeToString(d[:]))); err != nil {
		t.Fatalf("no quarantined file: %v", err)
	}
	if logs.FilterMessageSnippet("quarantined").FilterFieldKey("reason").Len() != 1 {
		t.Fatal("quarantine not logged with a reason")
	}
	if s := c.Stats(); s.Quarantined != 1 || s.Bytes != int64(len(good)) {
		t.Fatalf("stats after quarantine = %+v", s)
	}
	if err := c.Verify(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify of a quarantined image: got %v, want ErrNotFound", err)
	}
	// The digest is free again: a fresh download can land.
	put(t, c, b, d)
	c2, _ := open(t, c.dir, 0)
	if !c2.Has(d) || len(c2.List()) != 2 {
		t.Fatal("re-downloaded image or quarantine directory confused the restart")
	}
}

func TestEvictionRemovesLeastRecentlyUsedUnderCap(t *testing.T) {
	c, _ := open(t, t.TempDir(), 3000)
	var ds [4][32]byte
	var bs [4][]byte
	for i := range 3 {
		bs[i], ds[i] = image(1000, uint64(20+i))
		put(t, c, bs[i], ds[i])
	}
	// Use 0 so that 1 becomes the least recently used.
	readAll(t, c, ds[0])
	bs[3], ds[3] = image(1000, 23)
	put(t, c, bs[3], ds[3]) // 4000 bytes > 3000: one must go

	if c.Has(ds[1]) {
		t.Fatal("least recently used image 1 was kept")
	}
	for _, i := range []int{0, 2, 3} {
		if !c.Has(ds[i]) {
			t.Fatalf("image %d evicted, but 1 was the least recently used", i)
		}
	}
	if s := c.Stats(); s.Bytes != 3000 || s.Evictions != 1 {
		t.Fatalf("stats = %+v, want 3000 bytes and 1 eviction", s)
	}
	if _, err := os.Stat(c.path(ds[1])); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("evicted file still on disk")
	}
}

func TestEvictionNeverRemovesNeededImages(t *testing.T) {
	c, logs := open(t, t.TempDir(), 1500)
	var ds [3][32]byte
	for i := range ds {
		_, ds[i] = image(1000, uint64(30+i))
	}
	c.SetNeeded(func(d [32]byte) bool { return d == ds[0] || d == ds[1] })
	for i := range ds {
		b, _ := image(1000, uint64(30+i))
		put(t, c, b, ds[i])
	}
	// ds[0] is the least recently used, but needed; ds[2] was spared only as just committed.
	logs.TakeAll()
	if _, err := c.Evict(); err != nil {
		t.Fatal(err)
	}
	if !c.Has(ds[0]) || !c.Has(ds[1]) {
		t.Fatal("needed image evicted")
	}
	if c.Has(ds[2]) {
		t.Fatal("unneeded image kept over the cap")
	}
	if c.Stats().Bytes != 2000 {
		t.Fatalf("bytes = %d, want 2000 (over the 1500 cap, both needed)", c.Stats().Bytes)
	}
	if logs.FilterMessageSnippet("over its cap").FilterLevelExact(zapcore.WarnLevel).Len() != 1 {
		t.Fatal("no warning that needed images keep the cache over its cap")
	}
}

func TestEvictionSkipsOpenEntryWhichStaysReadable(t *testing.T) {
	c, _ := open(t, t.TempDir(), 1000)
	b0, d0 := image(1000, 40)
	put(t, c, b0, d0)
	en, err := c.Open(d0)
	if err != nil {
		t.Fatal(err)
	}
	b1, d1 := image(1000, 41)
	put(t, c, b1, d1) // over the cap; d0 is LRU but open, d1 is spared as just committed
	if !c.Has(d0) {
		t.Fatal("open image evicted")
	}
	got := make([]byte, len(b0))
	if _, err := en.ReadAt(got, 0); err != nil || !bytes.Equal(got, b0) {
		t.Fatalf("open image not readable during eviction: %v", err)
	}
	if l := c.List(); len(l) != 2 || l[indexOf(l, d0)].Readers != 1 {
		t.Fatalf("List = %+v, want d0 with one reader", l)
	}
	en.Close()
	en.Close() // idempotent: must not drop the count twice
	if _, err := c.Evict(); err != nil {
		t.Fatal(err)
	}
	if c.Has(d0) {
		t.Fatal("closed LRU image kept over the cap")
	}
}

func indexOf(l []Info, d [32]byte) int {
	for i := range l {
		if l[i].Digest == d {
			return i
		}
	}
	return -1
}

func TestConcurrentReadersAndWriter(t *testing.T) {
	c, _ := open(t, t.TempDir(), 20_000)
	base, dbase := image(4000, 50)
	// The predicate calls back into the cache: eviction must not hold its lock meanwhile.
	c.SetNeeded(func(d [32]byte) bool { return c.Has(d) && d == dbase })
	put(t, c, base, dbase)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				en, err := c.Open(dbase)
				if err != nil { // needed, so never evicted
					t.Errorf("reader %d: %v", r, err)
					return
				}
				off := int64((i * 512) % 4000)
				n, err := en.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					t.Errorf("reader %d: ReadAt: %v", r, err)
				}
				if !bytes.Equal(buf[:n], base[off:off+int64(n)]) {
					t.Errorf("reader %d: wrong bytes at %d", r, off)
				}
				c.Has(dbase)
				c.List()
				c.Stats()
				en.Close()
			}
		}()
	}
	for i := range 20 {
		b, d := image(3000, uint64(100+i))
		p, err := c.Begin(d, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(b); off += 700 {
			if _, err := p.Write(b[off:min(off+700, len(b))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Commit(); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if _, err := c.Scrub(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if s := c.Stats(); s.Bytes > 20_000 || !c.Has(dbase) {
		t.Fatalf("after the run: %+v, needed image present: %v", s, c.Has(dbase))
	}
}

func TestNoSpaceErrorsAreClassified(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := noSpace(&os.PathError{Op: "write", Path: "x", Err: errno})
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, errno) {
			t.Errorf("%v: got %v, want ErrNoSpace wrapping the errno", errno, err)
		}
	}
	if err := noSpace(syscall.EIO); errors.Is(err, ErrNoSpace) {
		t.Error("EIO classified as ErrNoSpace")
	}
}
