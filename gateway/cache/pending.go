package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"
)

// Pending is one image being written into the cache. It is used by one goroutine (the
// download that owns it) and must end with exactly one of Commit, Abort or Discard; Abort and
// Discard after Commit are no-ops, so `defer p.Abort()` is the usual pattern.
type Pending struct {
	c      *Cache
	digest [32]byte
	size   int64
	f      *os.File
	off    int64
	done   bool
}

// Begin starts writing the image with the given digest and size. If a partial download of
// the same digest is on disk (from Abort or from a crash) it is resumed: Offset says how many
// bytes are already there, and the downloader asks upstream for the rest (an HTTP Range
// request). Those bytes are not trusted: Commit hashes the whole file.
//
// Only one writer per digest: a second Begin while the first Pending is live returns ErrBusy
// rather than waiting, because a download may stall for minutes and the caller (the upstream
// fetcher) already de-duplicates fetches; it can retry later or wait for the image to appear.
// Begin on an image that is already committed returns ErrExists.
func (c *Cache) Begin(digest [32]byte, size int64) (*Pending, error) {
	name := hex.EncodeToString(digest[:])
	if size < 0 {
		return nil, fmt.Errorf("cache %s: negative size %d: %w", name, size, ErrSizeMismatch)
	}
	c.mu.Lock()
	if _, ok := c.entries[digest]; ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("cache %s: %w", name, ErrExists)
	}
	if c.writing[digest] {
		c.mu.Unlock()
		return nil, fmt.Errorf("cache %s: %w", name, ErrBusy)
	}
	c.writing[digest] = true
	c.mu.Unlock()

	p, err := c.openPartial(digest, size)
	if err != nil {
		c.release(digest)
		return nil, fmt.Errorf("cache %s: %w", name, err)
	}
	return p, nil
}

func (c *Cache) openPartial(digest [32]byte, size int64) (*Pending, error) {
	path := c.partialPath(digest)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, noSpace(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	off := fi.Size()
	if off > size {
		// Same digest, so same content: a longer partial cannot be a prefix of this image
		// and one of the two sizes is wrong. Start over; Commit will settle which.
		c.log.Warn("partial download longer than the expected size, starting over",
			zap.String("file", filepath.Base(path)), zap.Int64("partial", off), zap.Int64("size", size))
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
		off = 0
	}
	if off > 0 {
		// After a crash the length may include bytes that were never fsynced; syncing now
		// makes Offset true from here on, and Commit's hash catches anything that was lost.
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return nil, noSpace(err)
		}
		c.log.Info("resuming partial download", zap.String("file", filepath.Base(path)),
			zap.Int64("offset", off), zap.Int64("size", size))
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &Pending{c: c, digest: digest, size: size, f: f, off: off}, nil
}

func (c *Cache) release(digest [32]byte) {
	c.mu.Lock()
	delete(c.writing, digest)
	c.mu.Unlock()
}

// Offset is the number of bytes already in the partial file: where the download continues.
func (p *Pending) Offset() int64 { return p.off }

// Size is the expected size of the image.
func (p *Pending) Size() int64 { return p.size }

// Write appends to the partial file. A write that would go past the expected size writes
// nothing and returns ErrTooLarge: upstream sent more than the manifest promised. A full disk
// returns ErrNoSpace; bytes written before it stay counted in Offset, and the caller chooses
// Abort (resume when space frees up) or Discard.
func (p *Pending) Write(b []byte) (int, error) {
	if p.done {
		return 0, p.err(ErrFinished)
	}
	if int64(len(b)) > p.size-p.off {
		return 0, p.err(fmt.Errorf("%w: %d bytes at offset %d of %d", ErrTooLarge, len(b), p.off, p.size))
	}
	n, err := p.f.Write(b)
	p.off += int64(n)
	if err != nil {
		return n, p.err(noSpace(err))
	}
	return n, nil
}

// Commit makes the image durable and visible: fsync, check size and SHA-256 against what
// Begin was told, rename into place, fsync the directory. On ErrSizeMismatch or
// ErrDigestMismatch the partial is deleted, since resuming a wrong file can only fail again.
// If fsync fails the partial is deleted too: after a failed fsync Linux may have dropped the
// dirty pages while the file length still claims them, so the bytes cannot be trusted.
// A successful Commit may evict other images to get back under the cap; never this one.
func (p *Pending) Commit() error {
	if p.done {
		return p.err(ErrFinished)
	}
	p.done = true
	c := p.c
	defer c.release(p.digest)
	path := c.partialPath(p.digest)
	fail := func(err error) error {
		p.f.Close()
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			c.log.Warn("cannot remove rejected partial", zap.String("file", path), zap.Error(rerr))
		}
		return p.err(err)
	}
	if err := p.f.Sync(); err != nil {
		return fail(noSpace(err))
	}
	fi, err := p.f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() != p.size {
		return fail(fmt.Errorf("%w: have %d bytes, expected %d", ErrSizeMismatch, fi.Size(), p.size))
	}
	// Hash what is in the file rather than what passed through Write: a resumed partial's
	// first bytes never passed through this Pending at all.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(p.f, 0, p.size)); err != nil {
		return fail(err)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, p.digest[:]) {
		return fail(fmt.Errorf("%w: got %x", ErrDigestMismatch, sum))
	}
	if err := p.f.Close(); err != nil {
		return fail(err)
	}
	c.mu.Lock()
	if err := os.Rename(path, c.path(p.digest)); err != nil {
		c.mu.Unlock()
		return fail(err)
	}
	c.tick++
	c.entries[p.digest] = &entry{digest: p.digest, size: p.size, used: c.tick}
	c.bytes += p.size
	c.mu.Unlock()
	if err := syncDir(c.dir); err != nil {
		// The image is complete and verified. If the rename is lost in a crash it comes back
		// as a full-length partial, which the next Begin resumes at Offset == size and
		// commits at once, so this is worth a warning, not a failure.
		c.log.Warn("cannot fsync cache directory after commit", zap.Error(err))
	}
	c.log.Info("image committed", zap.String("digest", hex.EncodeToString(p.digest[:])), zap.Int64("size", p.size))
	if _, err := c.evict(&p.digest); err != nil {
		c.log.Warn("eviction after commit failed", zap.Error(err))
	}
	return nil
}

// Abort ends the write and keeps the partial on disk so a later Begin resumes it. It
// fsyncs first so the resumed Offset is durable; if that fails the partial is deleted.
func (p *Pending) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	defer p.c.release(p.digest)
	err := p.f.Sync()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p.c.partialPath(p.digest))
		return p.err(noSpace(err))
	}
	return nil
}

// Discard ends the write and deletes the partial.
func (p *Pending) Discard() error {
	if p.done {
		return nil
	}
	p.done = true
	defer p.c.release(p.digest)
	p.f.Close()
	if err := os.Remove(p.c.partialPath(p.digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return p.err(err)
	}
	return nil
}

func (p *Pending) err(err error) error {
	return fmt.Errorf("cache %s: %w", hex.EncodeToString(p.digest[:]), err)
}
