package devicelib

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// FileFlash is a NOR flash slot kept in a file, with the same rules as MemFlash; Sync is
// fsync. fotadev keeps its staging slot in one, so a download survives the process.
type FileFlash struct {
	mu     sync.Mutex
	f      *os.File
	size   int64
	sector int
	erased []byte // one sector of Erased bytes, the source of every Erase
}

// OpenFileFlash opens the slot file at path, creating it (mode 0600, every byte erased) when
// it does not exist. An existing file must be exactly size bytes.
func OpenFileFlash(path string, size int64, sectorSize int) (*FileFlash, error) {
	if err := checkGeometry(size, sectorSize); err != nil {
		return nil, err
	}
	ff := &FileFlash{size: size, sector: sectorSize, erased: make([]byte, sectorSize)}
	for i := range ff.erased {
		ff.erased[i] = Erased
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		ff.f = f
		if err := ff.format(); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("flash %s: creating: %w", path, err)
		}
		return ff, nil
	case !errors.Is(err, os.ErrExist):
		return nil, fmt.Errorf("flash %s: %w", path, err)
	}
	if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, fmt.Errorf("flash %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != size) {
		err = fmt.Errorf("is %d bytes (%s), want a regular file of %d bytes: give its size, or move it away to start with an erased slot", fi.Size(), fi.Mode().Type(), size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flash %s: %w", path, err)
	}
	ff.f = f
	return ff, nil
}

// format fills a new file with erased sectors and makes it durable.
func (ff *FileFlash) format() error {
	for off := int64(0); off < ff.size; off += int64(ff.sector) {
		if _, err := ff.f.WriteAt(ff.erased, off); err != nil {
			return err
		}
	}
	return ff.f.Sync()
}

// SectorSize implements Flash.
func (ff *FileFlash) SectorSize() int { return ff.sector }

// Size implements Flash.
func (ff *FileFlash) Size() int64 { return ff.size }

// Erase implements Flash.
func (ff *FileFlash) Erase(sector int) error {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if err := checkSector(sector, ff.sector, ff.size); err != nil {
		return err
	}
	_, err := ff.f.WriteAt(ff.erased, int64(sector)*int64(ff.sector))
	return err
}

// Write implements Flash. It reads the target bytes first to enforce the NOR rule.
func (ff *FileFlash) Write(off int64, p []byte) error {
	ff.mu.Lock()
	defer ff.mu.Unlock()
	if err := checkAccess(ff.size, off, len(p), true); err != nil {
		return err
	}
	var buf [PageSize]byte
	for done := 0; done < len(p); {
		b := buf[:min(len(buf), len(p)-done)]
		if _, err := ff.f.ReadAt(b, off+int64(done)); err != nil {
			return err
		}
		if i := firstNotErased(b); i >= 0 {
			return fmt.Errorf("%w: byte %d is %#02x", ErrNotErased, off+int64(done+i), b[i])
		}
		done += len(b)
	}
	_, err := ff.f.WriteAt(p, off)
	return err
}

// Read implements Flash.
func (ff *FileFlash) Read(off int64, p []byte) error {
	if err := checkAccess(ff.size, off, len(p), false); err != nil {
		return err
	}
	if _, err := ff.f.ReadAt(p, off); err != nil && !(errors.Is(err, io.EOF) && len(p) == 0) {
		return err
	}
	return nil
}

// Sync implements Flash with fsync.
func (ff *FileFlash) Sync() error { return ff.f.Sync() }

// Close closes the file.
func (ff *FileFlash) Close() error { return ff.f.Close() }
