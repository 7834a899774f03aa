package cache

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"go.uber.org/zap"
)

// Entry is an open cached image. ReadAt may be called from many goroutines at once. The image
// cannot be evicted while any Entry of it is open; Close releases it.
type Entry struct {
	c    *Cache
	e    *entry
	f    *os.File
	once sync.Once
}

var _ io.ReaderAt = (*Entry)(nil)

// Open opens a committed image for reading and counts a hit or a miss. Nothing is re-hashed
// (the image was verified at Commit and Scrub re-checks on demand), but the file's size is
// compared with the committed size, and a file that changed size is quarantined and reported
// as ErrCorrupt.
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
	c.mu.Unlock()

	f, err := c.openFile(e)
	if err != nil {
		return nil, err
	}
	return &Entry{c: c, e: e, f: f}, nil
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
		if cur, ok := c.entries[e.digest]; ok && cur == e {
			delete(c.entries, e.digest)
			c.bytes -= e.size
		}
		c.log.Warn("cached image vanished from disk", zap.String("digest", name))
		return nil, fmt.Errorf("cache %s: %w", name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("cache %s: %w", name, err)
	}
	c.quarantineLocked(e, fmt.Sprintf("size on disk %d, committed %d", fi.Size(), e.size))
	return nil, fmt.Errorf("cache %s: %w: size on disk %d, committed %d", name, ErrCorrupt, fi.Size(), e.size)
}

// ReadAt reads from the image; it never reads past Size (io.EOF there).
func (en *Entry) ReadAt(p []byte, off int64) (int, error) { return en.f.ReadAt(p, off) }

// Size is the image's size in bytes.
func (en *Entry) Size() int64 { return en.e.size }

// Digest is the image's SHA-256.
func (en *Entry) Digest() [32]byte { return en.e.digest }

// Close releases the image; further calls do nothing.
func (en *Entry) Close() error {
	var err error
	en.once.Do(func() {
		err = en.f.Close()
		en.c.mu.Lock()
		en.e.refs--
		en.c.mu.Unlock()
	})
	return err
}
