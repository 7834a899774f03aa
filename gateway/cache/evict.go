package cache

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"

	"go.uber.org/zap"
)

// SetNeeded installs the predicate that says whether some device still needs an image (the
// catalog knows: an image is needed while any device's class is offered it). Needed images
// are never evicted, even over the cap. Until it is set, no image counts as needed and the
// cap is enforced by LRU alone. The predicate is called without the cache's lock held, so it
// may call back into the cache, and it must be safe for concurrent use.
func (c *Cache) SetNeeded(needed func(digest [32]byte) bool) {
	c.mu.Lock()
	c.needed = needed
	c.mu.Unlock()
}

// Evict removes images until the committed bytes are under the cap, least recently used
// first, skipping images the needed predicate keeps and images with an open Entry. If what
// remains is still over the cap it logs a warning: the disk is too small for the images
// devices need. Commit calls it; call it after SetNeeded at startup and whenever the set of
// needed images shrinks. It returns the bytes freed and any deletion failures.
//
// Deletion uses a reference count rather than POSIX unlink-while-open semantics: unlinking
// would keep readers working, but the space would not come back until they close, so the
// cap would be a lie.
func (c *Cache) Evict() (freed int64, err error) { return c.evict(nil) }

func (c *Cache) evict(spare *[32]byte) (int64, error) {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()

	type cand struct {
		e    *entry
		used uint64
	}
	c.mu.Lock()
	if c.capBytes <= 0 || c.bytes <= c.capBytes {
		c.mu.Unlock()
		return 0, nil
	}
	needed := c.needed
	var cands []cand
	for d, e := range c.entries {
		if spare != nil && d == *spare {
			continue
		}
		cands = append(cands, cand{e, e.used})
	}
	c.mu.Unlock()

	// The predicate is the caller's code: run it outside our lock.
	if needed != nil {
		cands = slices.DeleteFunc(cands, func(x cand) bool { return needed(x.e.digest) })
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.used, b.used) })

	var freed int64
	var errs []error
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range cands {
		if c.bytes <= c.capBytes {
			break
		}
		e := x.e
		// Re-check under the lock: it may have been opened or quarantined meanwhile.
		if c.entries[e.digest] != e || e.refs > 0 {
			continue
		}
		// Unlinking under the lock means no Begin/Commit of the same digest can put a new
		// file at this path between our decision and the unlink.
		if err := os.Remove(c.path(e.digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cache %s: evict: %w", hex.EncodeToString(e.digest[:]), err))
			continue
		}
		c.forgetLocked(e)
		freed += e.size
		c.stats.Evictions++
		c.log.Info("evicted image no device needs", zap.String("digest", hex.EncodeToString(e.digest[:])),
			zap.Int64("size", e.size))
	}
	if freed > 0 {
		if err := syncDir(c.dir); err != nil {
			c.log.Warn("cannot fsync cache directory after eviction", zap.Error(err))
		}
	}
	if c.bytes > c.capBytes {
		c.log.Warn("cache over its cap: the remaining images are needed by devices or being read; "+
			"raise the cap or free disk space",
			zap.Int64("bytes", c.bytes), zap.Int64("cap_bytes", c.capBytes), zap.Int("images", len(c.entries)))
	}
	return freed, errors.Join(errs...)
}
