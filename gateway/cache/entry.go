package cache

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"go.uber.org/zap"
)

// Entry is an open cached image. ReadAt may be called from many goroutines at once. The image
// cannot be evicted while any Entry of it is open; Close releases it.
type Entry struct {
	c    *Cache
	e    *entry
	f    *os.File // nil when mem holds the image
	mem  []byte
	once sync.Once
}

// HoldInMemory lets Open keep up to max bytes of images in memory (0, the default: none), so
// the sessions serving one seal straight from it (protocol.ImageBytes) instead of each
// opening and reading the file: a copy of every byte fewer, and no file calls per session.
// The first Open of an image that fits reads it whole and re-hashes it, so a file that rotted
// on disk since its Commit is quarantined then rather than served. An image leaves memory
// when it leaves the cache (eviction, quarantine), or when an image that does not fit needs
// its room and no session has it open (least recently used first: the images a cache keeps
// on disk outnumber by far those devices still fetch); sessions that hold it keep their copy.
// One Open at a time reads an image in; the others read the file meanwhile, so a crowd of
// sessions after a start costs one copy, not one each.
func (c *Cache) HoldInMemory(max int64) {
	c.mu.Lock()
	c.memCap = max
	c.mu.Unlock()
}

// Open opens a committed image for reading and counts a hit or a miss. A file is not
// re-hashed (the image was verified at Commit and Scrub re-checks on demand), but its size is
// compared with the committed size, and a file that changed size is quarantined and reported
// as ErrCorrupt. The exception is the Open that reads an image in to hold it (HoldInMemory):
// that one re-hashes what it read, since every later session is served from it. An image
// held already is served without touching its file.
func (c *Cache) Open(digest [32]byte) (*Entry, error) {
	c.mu.Lock()
	e, ok := c.entries[digest]
	if !ok {
		c.stats.Misses++
		c.mu.Unlock()
		return nil, fmt.Errorf("cache %s: %w", hex.EncodeToString(digest[:]), ErrNotFound)
	}
	c.stats.Hits++
	c.tick++
	e.used = c.tick
	e.refs++
	mem, load := e.mem, e.mem == nil && !e.loading && c.roomLocked(e.size)
	e.loading = e.loading || load
	c.mu.Unlock()
	if mem != nil {
		return &Entry{c: c, e: e, mem: mem}, nil
	}

	f, err := c.openFile(e)
	if err != nil {
		if load {
			c.mu.Lock()
			e.loading = false
			c.mu.Unlock()
		}
		return nil, err
	}
	if load {
		return c.load(e, f)
	}
	return &Entry{c: c, e: e, f: f}, nil
}

// load reads e's open file f whole, checks its digest and holds it in memory if the budget
// still has room; either way the Entry returned reads from memory.
func (c *Cache) load(e *entry, f *os.File) (*Entry, error) {
	mem := make([]byte, e.size)
	_, err := io.ReadFull(io.NewSectionReader(f, 0, e.size), mem)
	f.Close()
	sum := sha256.Sum256(mem)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.loading = false
	switch {
	case err != nil:
		e.refs--
		return nil, fmt.Errorf("cache %s: %w", hex.EncodeToString(e.digest[:]), err)
	case sum != e.digest:
		e.refs--
		return nil, c.corruptLocked(e, sum[:])
	}
	if c.entries[e.digest] == e && e.mem == nil && c.roomLocked(e.size) {
		e.mem = mem
		c.memUsed += e.size
	}
	return &Entry{c: c, e: e, mem: mem}, nil
}

// roomLocked reports whether size bytes of image fit in what HoldInMemory allows, making the
// room if it must by dropping the copies of images no session has open, least recently used
// first; it drops none when that would not make room.
func (c *Cache) roomLocked(size int64) bool {
	if size <= c.memCap-c.memUsed {
		return true
	}
	var idle []*entry
	free := c.memCap - c.memUsed
	for _, e := range c.entries {
		if e.mem != nil && e.refs == 0 {
			idle = append(idle, e)
			free += int64(len(e.mem))
		}
	}
	if size > free {
		return false
	}
	slices.SortFunc(idle, func(a, b *entry) int { return cmp.Compare(a.used, b.used) })
	for _, e := range idle {
		c.memUsed -= int64(len(e.mem))
		e.mem = nil
		if size <= c.memCap-c.memUsed {
			break
		}
	}
	return true
}

// openFile opens e's file and checks its size, for a caller that already holds a reference;
// on failure it drops that reference.
func (c *Cache) openFile(e *entry) (*os.File, error) {
	name := hex.EncodeToString(e.digest[:])
	f, err := os.Open(c.path(e.digest))
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if err == nil && fi.Size() == e.size {
		return f, nil
	}
	if f != nil {
		f.Close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Deleted behind our back (by hand, or a full fsck). Forget it; it will be fetched again.
		c.forgetLocked(e)
		c.log.Warn("cached image vanished from disk", zap.String("digest", name))
		return nil, fmt.Errorf("cache %s: %w", name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("cache %s: %w", name, err)
	}
	c.quarantineLocked(e, fmt.Sprintf("size on disk %d, committed %d", fi.Size(), e.size))
	return nil, fmt.Errorf("cache %s: %w: size on disk %d, committed %d", name, ErrCorrupt, fi.Size(), e.size)
}

// ReadAt reads from the image; it never reads past Size (io.EOF there).
func (en *Entry) ReadAt(p []byte, off int64) (int, error) {
	if en.f != nil {
		return en.f.ReadAt(p, off)
	}
	if off < 0 || off > int64(len(en.mem)) {
		return 0, fmt.Errorf("cache: read at %d of a %d-byte image", off, len(en.mem))
	}
	n := copy(p, en.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ImageBytes is the whole image when the Entry holds it in memory (HoldInMemory), else nil:
// read it with ReadAt then.
func (en *Entry) ImageBytes() []byte { return en.mem }

// Size is the image's size in bytes.
func (en *Entry) Size() int64 { return en.e.size }

// Digest is the image's SHA-256.
func (en *Entry) Digest() [32]byte { return en.e.digest }

// Close releases the image; further calls do nothing.
func (en *Entry) Close() error {
	var err error
	en.once.Do(func() {
		if en.f != nil {
			err = en.f.Close()
		}
		en.c.mu.Lock()
		en.e.refs--
		en.c.mu.Unlock()
	})
	return err
}
