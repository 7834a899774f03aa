// Package cache keeps verified firmware images on the gateway's disk, named by their SHA-256.
// It sits between the upstream downloader, which writes images in through Begin/Commit, and
// the device sessions, which read them out through Open (upstream -> manifest check -> cache
// -> catalog -> device session). An image becomes visible only after its size and digest have
// been checked against what the signed manifest promised, so nothing unverified is served.
//
// On disk a directory holds one file per image, named by the lower-case hex digest, plus
// "<hex>.partial" files that are being written or were left by an interrupted download
// (never served; a later Begin resumes them) and a "quarantine" directory for images a scrub
// found corrupt.
package cache

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// Errors a caller may act on; every error the package returns that is not an I/O error from
// the operating system wraps one of them.
var (
	ErrNotFound       = errors.New("image not cached")
	ErrExists         = errors.New("image already cached")
	ErrBusy           = errors.New("image is being written by another writer")
	ErrTooLarge       = errors.New("write beyond the expected image size")
	ErrSizeMismatch   = errors.New("image size differs from the expected size")
	ErrDigestMismatch = errors.New("image SHA-256 differs from the expected digest")
	ErrCorrupt        = errors.New("cached image is corrupt")
	ErrNoSpace        = errors.New("no space left on the cache file system")
	ErrFinished       = errors.New("pending write already committed, aborted or discarded")
)

const (
	partialSuffix = ".partial"
	quarantineDir = "quarantine"
)

// Cache is a directory of verified images. All methods are safe for concurrent use.
type Cache struct {
	dir      string
	capBytes int64
	log      *zap.Logger

	// evictMu serialises eviction passes so two commits do not both pick the same victims
	// and then evict twice as much as needed. Held outside mu because the needed predicate
	// is caller code and must not run under our lock (it may call Has).
	evictMu sync.Mutex

	mu      sync.Mutex
	entries map[[32]byte]*entry
	writing map[[32]byte]bool // digests with a live Pending
	bytes   int64             // sum of committed entry sizes
	memCap  int64             // bytes of images Open may hold in memory (HoldInMemory)
	memUsed int64             // bytes of images held in memory
	tick    uint64            // logical LRU clock; bumped on every Open and Commit
	needed  func([32]byte) bool
	stats   Stats
}

// entry is one committed image. refs counts open Entries; an entry with refs > 0 is never
// evicted (see Evict).
type entry struct {
	digest [32]byte
	size   int64
	used   uint64
	refs   int
	mem    []byte // the image, re-hashed when read in, once Open holds it in memory; never changed
	// loading is set while one Open reads the image in to hold it: the others read the file
	// meanwhile, so that sessions arriving together after a start do not each read a copy.
	loading bool
}

// Info describes one cached image.
type Info struct {
	Digest  [32]byte
	Size    int64
	Readers int // Entries currently open
}

// Stats are counters for metrics and the admin page.
type Stats struct {
	Hits        uint64 // Open found the image
	Misses      uint64 // Open did not
	Entries     int
	Bytes       int64 // committed images only; partials are not counted
	CapBytes    int64
	Evictions   uint64
	Quarantined uint64
}

// Open opens (creating if needed) the cache in dir. capBytes is the size the committed images
// should stay under; 0 or less means no cap. Open indexes the committed images, keeps partial
// downloads for resumption and ignores (with a warning) files it does not recognise. It does
// not evict: the caller installs the needed predicate with SetNeeded and then calls Evict.
// Nothing is re-hashed at Open; call Scrub for that.
func Open(dir string, capBytes int64, log *zap.Logger) (*Cache, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Cache{
		dir:      dir,
		capBytes: capBytes,
		log:      log.With(zap.String("cache_dir", dir)),
		entries:  make(map[[32]byte]*entry),
		writing:  make(map[[32]byte]bool),
	}
	if err := c.scan(); err != nil {
		return nil, err
	}
	return c, nil
}

// scan builds the index from the directory. LRU order across restarts falls back to the
// files' modification times, that is commit order: we do not touch files on every read, and
// the order only matters among images no device needs any more.
func (c *Cache) scan() error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	type found struct {
		e     *entry
		mtime int64
	}
	var committed []found
	partials := map[[32]byte]string{}
	for _, de := range des {
		name := de.Name()
		if de.IsDir() && name == quarantineDir {
			continue
		}
		if d, ok := parseName(name); ok && de.Type().IsRegular() {
			fi, err := de.Info()
			if err != nil {
				return fmt.Errorf("cache: %w", err)
			}
			if fi.Size() == 0 && d != emptyDigest {
				// The classic trace of a rename that reached the disk before the data did.
				// We fsync before renaming, but a copied-in or older cache may not have.
				c.quarantineLocked(&entry{digest: d}, "empty file")
				continue
			}
			committed = append(committed, found{&entry{digest: d, size: fi.Size()}, fi.ModTime().UnixNano()})
			continue
		}
		if base, ok := strings.CutSuffix(name, partialSuffix); ok && de.Type().IsRegular() {
			if d, ok := parseName(base); ok {
				partials[d] = name
				continue
			}
		}
		c.log.Warn("ignoring unknown file in cache directory; it is never served", zap.String("file", name))
	}
	slices.SortFunc(committed, func(a, b found) int {
		if a.mtime != b.mtime {
			return cmp.Compare(a.mtime, b.mtime)
		}
		return slices.Compare(a.e.digest[:], b.e.digest[:])
	})
	for _, f := range committed {
		c.tick++
		f.e.used = c.tick
		c.entries[f.e.digest] = f.e
		c.bytes += f.e.size
	}
	for d, name := range partials {
		if _, ok := c.entries[d]; ok {
			// Already committed; the partial can only be a leftover of a second download.
			if err := os.Remove(filepath.Join(c.dir, name)); err != nil {
				c.log.Warn("cannot remove stale partial", zap.String("file", name), zap.Error(err))
			}
			continue
		}
		c.log.Info("keeping partial download for resumption", zap.String("file", name))
	}
	c.stats.CapBytes = c.capBytes
	c.log.Info("cache opened", zap.Int("images", len(c.entries)), zap.Int64("bytes", c.bytes),
		zap.Int64("cap_bytes", c.capBytes), zap.Int("partials", len(partials)))
	return nil
}

// Has reports whether the image is committed. It does not count as a use.
func (c *Cache) Has(digest [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[digest]
	return ok
}

// List returns the committed images sorted by digest. Partials are never listed.
func (c *Cache) List() []Info {
	c.mu.Lock()
	out := make([]Info, 0, len(c.entries))
	for _, e := range c.entries {
		out = append(out, Info{Digest: e.digest, Size: e.size, Readers: e.refs})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int { return slices.Compare(a.Digest[:], b.Digest[:]) })
	return out
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.entries)
	s.Bytes = c.bytes
	return s
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) path(d [32]byte) string { return filepath.Join(c.dir, hex.EncodeToString(d[:])) }

func (c *Cache) partialPath(d [32]byte) string { return c.path(d) + partialSuffix }

// forgetLocked drops e from the index, and its copy in memory, if it is still the entry for
// its digest. Entries already open keep the copy they hold.
func (c *Cache) forgetLocked(e *entry) {
	if c.entries[e.digest] == e {
		delete(c.entries, e.digest)
		c.bytes -= e.size
		c.memUsed -= int64(len(e.mem))
		e.mem = nil
	}
}

// quarantineLocked moves an image's file out of the served set and forgets it. Renaming (not
// deleting) keeps the evidence for whoever investigates the disk; one file per digest bounds
// the quarantine's size. Readers that already hold the file open keep reading it (POSIX
// rename semantics); the device's digest check rejects what they get. Called with c.mu held,
// so no concurrent Commit of the same digest can land between our decision and the rename.
func (c *Cache) quarantineLocked(e *entry, reason string) {
	src := c.path(e.digest)
	qdir := filepath.Join(c.dir, quarantineDir)
	err := os.MkdirAll(qdir, 0o750)
	if err == nil {
		err = os.Rename(src, filepath.Join(qdir, hex.EncodeToString(e.digest[:])))
	}
	if err != nil {
		// Deleting still keeps the corrupt image from being served.
		c.log.Warn("cannot quarantine corrupt image, deleting it", zap.Error(err))
		if rerr := os.Remove(src); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			c.log.Error("cannot delete corrupt image; remove it by hand", zap.String("file", src), zap.Error(rerr))
		}
	}
	c.forgetLocked(e)
	c.stats.Quarantined++
	c.log.Error("corrupt image quarantined; it will be fetched again when needed",
		zap.String("digest", hex.EncodeToString(e.digest[:])), zap.String("reason", reason),
		zap.String("moved_to", qdir))
}

// noSpace wraps ENOSPC and EDQUOT in ErrNoSpace so callers can tell "disk full, retry later"
// from other I/O failures; the operating system's error stays in the chain.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// emptyDigest is SHA-256 of the empty string, the only digest a zero-length file may carry.
var emptyDigest = [32]byte{
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
}

// parseName accepts exactly 64 lower-case hex digits, the only names we write, so a file
// copied in under another spelling is never mistaken for an image.
func parseName(name string) ([32]byte, bool) {
	var d [32]byte
	if len(name) != 64 {
		return d, false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return d, false
		}
	}
	_, err := hex.Decode(d[:], []byte(name))
	return d, err == nil
}
