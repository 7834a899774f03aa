package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Verify re-hashes one committed image. If the content no longer matches its name (bit rot,
// a bad disk, someone editing the file) the image is quarantined, the reason logged, and
// ErrCorrupt returned; the next device that needs it causes a fresh download. It returns
// ErrNotFound for an image that is not cached. Verify does not count as a use for LRU or stats.
func (c *Cache) Verify(digest [32]byte) error {
	c.mu.Lock()
	e, ok := c.entries[digest]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("cache %s: %w", hex.EncodeToString(digest[:]), ErrNotFound)
	}
	e.refs++ // so eviction leaves it alone while we read
	c.mu.Unlock()

	f, err := c.openFile(e)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(h, io.NewSectionReader(f, 0, e.size))
	f.Close()
	sum := h.Sum(nil)

	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if err != nil {
		return fmt.Errorf("cache %s: verify: %w", hex.EncodeToString(digest[:]), err)
	}
	if bytes.Equal(sum, digest[:]) {
		return nil
	}
	return c.corruptLocked(e, sum)
}

// corruptLocked quarantines e, whose content hashes to sum, if it is still the entry for its
// digest, and returns the ErrCorrupt that says so.
func (c *Cache) corruptLocked(e *entry, sum []byte) error {
	if c.entries[e.digest] == e {
		c.quarantineLocked(e, fmt.Sprintf("content hashes to %x", sum))
	}
	return fmt.Errorf("cache %s: %w: content hashes to %x", hex.EncodeToString(e.digest[:]), ErrCorrupt, sum)
}

// Scrub verifies every committed image (see Verify) and returns the digests it quarantined.
// Run it at startup when the disk is suspect, or periodically; it reads every byte, so it
// stops early when ctx is done. Errors other than corruption are returned after the pass.
func (c *Cache) Scrub(ctx context.Context) (quarantined [][32]byte, err error) {
	var firstErr error
	for _, info := range c.List() {
		if err := ctx.Err(); err != nil {
			return quarantined, err
		}
		switch err := c.Verify(info.Digest); {
		case err == nil, errors.Is(err, ErrNotFound):
			// Evicted meanwhile: nothing to check.
		case errors.Is(err, ErrCorrupt):
			quarantined = append(quarantined, info.Digest)
		case firstErr == nil:
			firstErr = err
		}
	}
	return quarantined, firstErr
}
