package devicelib

import (
	"fmt"
	"sync"
)

// The flash model is the ESP8266's SPI NOR flash as its SDK exposes it: erase by sector,
// program only erased bytes, and spi_flash_write takes 4-byte aligned addresses and lengths
// with no exception for a final tail. So every Write here is word aligned in offset and
// length; a device pads an image's last partial word with 0xFF, which programs nothing and
// reads back as erased.
const (
	// WordSize is the program granularity: Write offsets and lengths are multiples of it.
	WordSize = 4
	// PageSize is the NOR program page, the unit of TimedFlash's write timing.
	PageSize = 256
	// Erased is the value of every byte of an erased sector.
	Erased = 0xFF
)

// Flash is one staging slot of NOR flash. Offsets are relative to the slot.
type Flash interface {
	// SectorSize is the erase unit in bytes, a multiple of WordSize.
	SectorSize() int
	// Size is the slot size in bytes, a multiple of SectorSize.
	Size() int64
	// Erase sets every byte of sector (0-based) to Erased.
	Erase(sector int) error
	// Write programs p at off. off and len(p) must be multiples of WordSize (ErrMisaligned)
	// and every byte written over must be erased (ErrNotErased).
	Write(off int64, p []byte) error
	// Read reads len(p) bytes at off.
	Read(off int64, p []byte) error
	// Sync returns once every earlier Erase and Write is durable.
	Sync() error
}

// checkGeometry validates a flash geometry for the constructors.
func checkGeometry(size int64, sectorSize int) error {
	if sectorSize <= 0 || sectorSize%WordSize != 0 {
		return fmt.Errorf("flash: sector size %d must be a positive multiple of %d", sectorSize, WordSize)
	}
	if size <= 0 || size%int64(sectorSize) != 0 {
		return fmt.Errorf("flash: size %d must be a positive multiple of the sector size %d", size, sectorSize)
	}
	return nil
}

// checkAccess validates the range of a Read or Write, and the alignment of a Write.
func checkAccess(size, off int64, n int, write bool) error {
	if off < 0 || off > size || int64(n) > size-off {
		return fmt.Errorf("%w: %d bytes at %d in a %d-byte slot", ErrOutOfRange, n, off, size)
	}
	if write && (off%WordSize != 0 || n%WordSize != 0) {
		return fmt.Errorf("%w: %d bytes at %d (multiples of %d only)", ErrMisaligned, n, off, WordSize)
	}
	return nil
}

func checkSector(sector, sectorSize int, size int64) error {
	if sector < 0 || int64(sector) >= size/int64(sectorSize) {
		return fmt.Errorf("%w: sector %d of %d", ErrOutOfRange, sector, size/int64(sectorSize))
	}
	return nil
}

// firstNotErased returns the index of the first byte of p that is not Erased, or -1.
func firstNotErased(p []byte) int {
	for i, b := range p {
		if b != Erased {
			return i
		}
	}
	return -1
}

// OpKind is the kind of a flash operation.
type OpKind uint8

// Flash operations, as counted by MemFlash and passed to its FailAt hook.
const (
	OpRead OpKind = iota + 1
	OpWrite
	OpErase
	OpSync
)

func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpErase:
		return "erase"
	case OpSync:
		return "sync"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op describes one MemFlash operation for its FailAt hook.
type Op struct {
	Kind OpKind
	N    int64 // 1-based index of this operation among all operations on the flash
	Off  int64 // byte offset (for an erase: of the sector)
	Len  int   // bytes read, written or erased; 0 for a sync
}

// FlashStats counts a MemFlash's operations since it was made.
type FlashStats struct {
	Reads, Writes, Erases, Syncs int64
	BytesRead, BytesWritten      int64
}

// MemFlash is a NOR flash slot in memory that enforces the Flash rules. Its FailAt hook
// injects failures for power-loss tests. It is safe for concurrent use.
type MemFlash struct {
	// FailAt, when set, is called before each operation (with the flash locked: it must not
	// call back into it). A non-nil error fails the operation as a power cut during it
	// would: a Write programs only its first half (whole words), an Erase erases only the
	// first half of its sector, and the error is returned wrapped. Invalid operations
	// (misaligned, out of range, not erased) are refused before FailAt is asked.
	FailAt func(op Op) error

	mu     sync.Mutex
	data   []byte
	sector int
	n      int64
	stats  FlashStats
}

// NewMemFlash returns an erased slot of size bytes with sectors of sectorSize bytes.
func NewMemFlash(size int64, sectorSize int) (*MemFlash, error) {
	if err := checkGeometry(size, sectorSize); err != nil {
		return nil, err
	}
	f := &MemFlash{data: make([]byte, size), sector: sectorSize}
	for i := range f.data {
		f.data[i] = Erased
	}
	return f, nil
}

// SectorSize implements Flash.
func (f *MemFlash) SectorSize() int { return f.sector }

// Size implements Flash.
func (f *MemFlash) Size() int64 { return int64(len(f.data)) }

// fail asks the FailAt hook about the next operation; the caller holds f.mu.
func (f *MemFlash) fail(kind OpKind, off int64, n int) error {
	f.n++
	if f.FailAt == nil {
		return nil
	}
	if err := f.FailAt(Op{Kind: kind, N: f.n, Off: off, Len: n}); err != nil {
		return fmt.Errorf("memflash: %s of %d bytes at %d: %w", kind, n, off, err)
	}
	return nil
}

// Erase implements Flash.
func (f *MemFlash) Erase(sector int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := checkSector(sector, f.sector, f.Size()); err != nil {
		return err
	}
	f.stats.Erases++
	s := f.data[sector*f.sector : (sector+1)*f.sector]
	if err := f.fail(OpErase, int64(sector*f.sector), f.sector); err != nil {
		s = s[:len(s)/2] // torn erase
		for i := range s {
			s[i] = Erased
		}
		return err
	}
	for i := range s {
		s[i] = Erased
	}
	return nil
}

// Write implements Flash.
func (f *MemFlash) Write(off int64, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := checkAccess(f.Size(), off, len(p), true); err != nil {
		return err
	}
	dst := f.data[off : off+int64(len(p))]
	if i := firstNotErased(dst); i >= 0 {
		return fmt.Errorf("%w: byte %d is %#02x", ErrNotErased, off+int64(i), dst[i])
	}
	f.stats.Writes++
	if err := f.fail(OpWrite, off, len(p)); err != nil {
		half := len(p) / 2 &^ (WordSize - 1) // torn write
		f.stats.BytesWritten += int64(copy(dst[:half], p))
		return err
	}
	f.stats.BytesWritten += int64(copy(dst, p))
	return nil
}

// Read implements Flash.
func (f *MemFlash) Read(off int64, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := checkAccess(f.Size(), off, len(p), false); err != nil {
		return err
	}
	f.stats.Reads++
	if err := f.fail(OpRead, off, len(p)); err != nil {
		return err
	}
	f.stats.BytesRead += int64(copy(p, f.data[off:]))
	return nil
}

// Sync implements Flash: NOR flash programs in place, so there is nothing to flush, but the
// operation is counted and can be failed.
func (f *MemFlash) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Syncs++
	return f.fail(OpSync, 0, 0)
}

// Stats returns the operation counts so far.
func (f *MemFlash) Stats() FlashStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Corrupt XORs the byte at off with mask, as bit rot would, ignoring the NOR rules.
func (f *MemFlash) Corrupt(off int64, mask byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := checkAccess(f.Size(), off, 1, false); err != nil {
		return err
	}
	f.data[off] ^= mask
	return nil
}
