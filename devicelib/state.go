package devicelib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/fotagate/fotagate/protocol"
)

// Image names one firmware image. The zero Image (Size 0) means none: the protocol never
// offers an empty image.
type Image struct {
	Seq    uint32
	Size   uint32
	Digest [protocol.DigestSize]byte
}

// IsZero reports whether i names no image.
func (i Image) IsZero() bool { return i.Size == 0 }

// same reports whether i and o are the same bytes, whatever their sequence numbers.
func (i Image) same(o Image) bool { return !i.IsZero() && i.Size == o.Size && i.Digest == o.Digest }

// Resume is the record of an image partly downloaded into the staging slot: every byte below
// Durable is in flash and was synced before the record was saved.
type Resume struct {
	Image
	Durable uint32
}

// State is what a device keeps across reboots and sessions.
type State struct {
	// BootCounter is incremented and saved before each session; it makes the session's
	// nonce fresh even when the device's RNG repeats after a reboot.
	BootCounter uint32
	// Class is the device class the state was written for.
	Class string
	// Running is the image the device runs. Running.Seq is the anti-rollback floor; a
	// factory image has Size 0 and sequence 0.
	Running Image
	// Pending is a downloaded and verified image waiting in the staging slot for the next
	// boot; zero when none.
	Pending Image
	// Resume is the download in progress; zero when none.
	Resume Resume
}

// Store keeps a device's State. Save must be atomic: after a crash at any point, Load returns
// either the old state or the new one. Load returns ErrNoState when nothing was ever saved
// and wraps ErrCorruptState when what it finds fails its checks.
type Store interface {
	Load() (State, error)
	Save(State) error
}

// The state's encoding: fixed size, big-endian, with a CRC-32C over everything before it.
// The C device can keep the same 157 bytes in its own flash sector.
//
//	magic "FOTAST1\n" | boot_counter u32 | class_len u8 | class [16] (zero padded) |
//	running: seq u32 | size u32 | sha256 [32] | pending: same | resume: same | durable u32 |
//	crc32c u32
const (
	stateMagic = "FOTAST1\n"
	imageSize  = 4 + 4 + protocol.DigestSize
	// StateSize is the size of an encoded State.
	StateSize = len(stateMagic) + 4 + 1 + protocol.MaxClassLen + 3*imageSize + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendImage(b []byte, i Image) []byte {
	b = binary.BigEndian.AppendUint32(b, i.Seq)
	b = binary.BigEndian.AppendUint32(b, i.Size)
	return append(b, i.Digest[:]...)
}

func parseImage(b []byte) Image {
	i := Image{Seq: binary.BigEndian.Uint32(b), Size: binary.BigEndian.Uint32(b[4:])}
	copy(i.Digest[:], b[8:])
	return i
}

// encodeState writes s into buf.
func encodeState(buf *[StateSize]byte, s *State) error {
	if err := protocol.CheckClass(s.Class); err != nil {
		return fmt.Errorf("device state: %w", err)
	}
	if s.Resume.Durable > s.Resume.Size {
		return fmt.Errorf("device state: durable offset %d past image size %d", s.Resume.Durable, s.Resume.Size)
	}
	b := append(buf[:0], stateMagic...)
	b = binary.BigEndian.AppendUint32(b, s.BootCounter)
	b = append(b, byte(len(s.Class)))
	var class [protocol.MaxClassLen]byte
	copy(class[:], s.Class)
	b = append(b, class[:]...)
	b = appendImage(b, s.Running)
	b = appendImage(b, s.Pending)
	b = appendImage(b, s.Resume.Image)
	b = binary.BigEndian.AppendUint32(b, s.Resume.Durable)
	binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return nil
}

// decodeState parses an encoded state; any failure wraps ErrCorruptState.
func decodeState(b []byte) (State, error) {
	var s State
	if len(b) != StateSize {
		return s, fmt.Errorf("%w: %d bytes, want %d", ErrCorruptState, len(b), StateSize)
	}
	body, sum := b[:StateSize-4], binary.BigEndian.Uint32(b[StateSize-4:])
	if string(body[:len(stateMagic)]) != stateMagic {
		return s, fmt.Errorf("%w: bad magic", ErrCorruptState)
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return s, fmt.Errorf("%w: checksum mismatch", ErrCorruptState)
	}
	p := body[len(stateMagic):]
	s.BootCounter = binary.BigEndian.Uint32(p)
	classLen := int(p[4])
	class := p[5 : 5+protocol.MaxClassLen]
	if classLen > protocol.MaxClassLen || firstNonZero(class[classLen:]) >= 0 {
		return s, fmt.Errorf("%w: class length %d", ErrCorruptState, classLen)
	}
	s.Class = string(class[:classLen])
	if err := protocol.CheckClass(s.Class); err != nil {
		return s, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	p = p[5+protocol.MaxClassLen:]
	s.Running = parseImage(p)
	s.Pending = parseImage(p[imageSize:])
	s.Resume.Image = parseImage(p[2*imageSize:])
	s.Resume.Durable = binary.BigEndian.Uint32(p[3*imageSize:])
	if s.Resume.Durable > s.Resume.Size {
		return s, fmt.Errorf("%w: durable offset %d past image size %d", ErrCorruptState, s.Resume.Durable, s.Resume.Size)
	}
	return s, nil
}

func firstNonZero(p []byte) int {
	for i, b := range p {
		if b != 0 {
			return i
		}
	}
	return -1
}

// MemStore keeps the encoded state in memory, for simulations. The zero value is an empty
// store; it is safe for concurrent use.
type MemStore struct {
	// FailSave, when set, is asked before the n-th Save (1-based); an error fails that Save
	// and leaves the previous state, as a power cut during an atomic write would.
	FailSave func(n int) error

	mu    sync.Mutex
	buf   [StateSize]byte
	has   bool
	saves int
}

// Load implements Store.
func (m *MemStore) Load() (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.has {
		return State{}, ErrNoState
	}
	return decodeState(m.buf[:])
}

// Save implements Store.
func (m *MemStore) Save(s State) error {
	var buf [StateSize]byte
	if err := encodeState(&buf, &s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	if m.FailSave != nil {
		if err := m.FailSave(m.saves); err != nil {
			return fmt.Errorf("memstore: save %d: %w", m.saves, err)
		}
	}
	m.buf, m.has = buf, true
	return nil
}

// Saves returns how many Saves were attempted.
func (m *MemStore) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}

// Corrupt XORs byte i of the encoded state with mask, for tests of corruption detection.
func (m *MemStore) Corrupt(i int, mask byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf[i%StateSize] ^= mask
}

// FileStore keeps the state in one file of StateSize bytes, mode 0600, replaced atomically on
// every Save: temporary file in the same directory, fsync, rename, fsync of the directory.
type FileStore struct {
	path string
}

// NewFileStore returns a store at path. Nothing is read or written until Load or Save.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// Path is the state file's path.
func (fs *FileStore) Path() string { return fs.path }

// Load implements Store. A missing file is ErrNoState (a new device); a file of the wrong
// size or checksum wraps ErrCorruptState, with the path and what to do.
func (fs *FileStore) Load() (State, error) {
	f, err := os.Open(fs.path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, fmt.Errorf("%w: %s does not exist", ErrNoState, fs.path)
	}
	if err != nil {
		return State{}, fmt.Errorf("state %s: %w", fs.path, err)
	}
	defer f.Close()
	var buf [StateSize + 1]byte // one more to see a file that is too long
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return State{}, fmt.Errorf("state %s: %w", fs.path, err)
	}
	s, err := decodeState(buf[:n])
	if err != nil {
		return State{}, fmt.Errorf("state %s: %w; the device will not start over on its own, since that would forget its anti-rollback floor: restore the file or remove it deliberately", fs.path, err)
	}
	return s, nil
}

// Save implements Store.
func (fs *FileStore) Save(s State) (err error) {
	var buf [StateSize]byte
	if err := encodeState(&buf, &s); err != nil {
		return err
	}
	dir, base := filepath.Split(fs.path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*") // created 0600
	if err != nil {
		return fmt.Errorf("state %s: %w", fs.path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("state %s: %w", fs.path, err)
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(buf[:]); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), fs.path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Systems that cannot fsync a directory say so with
// an error we cannot act on, so only errors from a successful open count.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
