// Package registry holds the devices the gateway serves: for each device ID its class and
// its 256-bit pre-shared key. The device session looks keys up here during the handshake
// (device session -> registry), and `fotagate keys` provisions devices through it.
//
// The registry is one JSON file, mode 0600, written only by this package (atomically:
// temporary file, fsync, rename). JSON through encoding/json because the file is
// machine-written and machine-read: no new dependency, and the decoder reports byte
// offsets, which the loader turns into line numbers for its errors. koanf would add
// layering and merging we do not want for key material: a key comes from exactly one place.
package registry

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fotagate/fotagate/protocol"
	"go.uber.org/zap"
)

// Errors a caller may act on, matched with errors.Is.
var (
	ErrInsecure  = errors.New("registry file is not private to its owner")
	ErrMalformed = errors.New("malformed registry file")
	ErrDuplicate = errors.New("duplicate device ID")
	ErrExists    = errors.New("device already registered")
	ErrNotFound  = errors.New("device not registered")
)

// Device is one provisioned device. Printing or logging it never shows the key.
type Device struct {
	ID    string
	Class string
	PSK   Key
	Note  string // free text for people, e.g. where the device is installed
}

// Registry is the loaded device file. Lookups are lock-free reads of an immutable map that
// Reload and the editing methods replace whole, so a session never sees half a reload.
type Registry struct {
	path string
	log  *zap.Logger

	devices atomic.Pointer[map[string]Device]

	// mu serialises this process's edits and reloads; a file lock (see lockFile) serialises
	// them with other processes, such as `fotagate keys add` while the gateway runs.
	mu sync.Mutex
}

// Load reads the registry at path. It refuses a file that group or others may read or write,
// or whose directory they may write to, with an error that says which command fixes it; the
// gateway refuses to start on that error.
func Load(path string, log *zap.Logger) (*Registry, error) {
	if log == nil {
		log = zap.NewNop()
	}
	r := &Registry{path: path, log: log.With(zap.String("registry", path))}
	m, err := readFile(path)
	if err != nil {
		return nil, err
	}
	r.devices.Store(&m)
	r.log.Info("device registry loaded", zap.Int("devices", len(m)))
	return r, nil
}

// LoadOrCreate is Load, except that a missing file (and its directory) is created empty,
// mode 0600 (directory 0700). For provisioning; the gateway itself uses Load.
func LoadOrCreate(path string, log *zap.Logger) (*Registry, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		unlock, err := lockFile(path)
		if err != nil {
			return nil, err
		}
		// Re-check under the lock: another provisioning run may have created it meanwhile.
		var werr error
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			werr = writeFileAtomic(path, encode(nil), nil)
		}
		unlock()
		if werr != nil {
			return nil, werr
		}
	}
	return Load(path, log)
}

// Path is the registry file.
func (r *Registry) Path() string { return r.path }

// Lookup returns the device with this ID. Safe for concurrent use, including during Reload.
func (r *Registry) Lookup(id string) (Device, bool) {
	d, ok := (*r.devices.Load())[id]
	return d, ok
}

// Len is the number of devices.
func (r *Registry) Len() int { return len(*r.devices.Load()) }

// List returns all devices sorted by ID.
func (r *Registry) List() []Device {
	m := *r.devices.Load()
	out := make([]Device, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Reload re-reads the file (the gateway calls it on SIGHUP) and swaps the new device set in
// atomically. On any error the old set stays in force and the error is returned.
func (r *Registry) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := readFile(r.path)
	if err != nil {
		r.log.Error("device registry reload failed; keeping the previous devices", zap.Error(err))
		return err
	}
	old := r.devices.Swap(&m)
	added, removed, changed := diff(*old, m)
	r.log.Info("device registry reloaded", zap.Int("devices", len(m)),
		zap.Int("added", added), zap.Int("removed", removed), zap.Int("changed", changed))
	return nil
}

func diff(old, cur map[string]Device) (added, removed, changed int) {
	for id, d := range cur {
		o, ok := old[id]
		switch {
		case !ok:
			added++
		case o != d:
			changed++
		}
	}
	for id := range old {
		if _, ok := cur[id]; !ok {
			removed++
		}
	}
	return added, removed, changed
}

// Add registers a new device with a fresh key read from rand (crypto/rand when nil) and
// saves the file. It refuses an ID that is already registered (ErrExists): replacing a key
// locks the old device out, so that takes an explicit Rotate.
func (r *Registry) Add(id, class string, rand io.Reader) (Device, error) {
	if err := protocol.CheckDeviceID(id); err != nil {
		return Device{}, fmt.Errorf("registry: %w", err)
	}
	if err := protocol.CheckClass(class); err != nil {
		return Device{}, fmt.Errorf("registry: %w", err)
	}
	var d Device
	err := r.edit(func(m map[string]Device) error {
		if _, ok := m[id]; ok {
			return fmt.Errorf("registry: device %q: %w (use rotate to replace its key)", id, ErrExists)
		}
		k, err := newKey(rand)
		if err != nil {
			return err
		}
		d = Device{ID: id, Class: class, PSK: k}
		m[id] = d
		return nil
	})
	return d, err
}

// Rotate gives a registered device a fresh key and saves the file. The device must be
// re-provisioned: its old key stops working at the gateway's next Reload.
func (r *Registry) Rotate(id string, rand io.Reader) (Device, error) {
	var d Device
	err := r.edit(func(m map[string]Device) error {
		var ok bool
		if d, ok = m[id]; !ok {
			return fmt.Errorf("registry: device %q: %w", id, ErrNotFound)
		}
		k, err := newKey(rand)
		if err != nil {
			return err
		}
		d.PSK = k
		m[id] = d
		return nil
	})
	return d, err
}

// Remove deletes a device and saves the file.
func (r *Registry) Remove(id string) error {
	return r.edit(func(m map[string]Device) error {
		if _, ok := m[id]; !ok {
			return fmt.Errorf("registry: device %q: %w", id, ErrNotFound)
		}
		delete(m, id)
		return nil
	})
}

// SetNote replaces a device's note and saves the file.
func (r *Registry) SetNote(id, note string) error {
	return r.edit(func(m map[string]Device) error {
		d, ok := m[id]
		if !ok {
			return fmt.Errorf("registry: device %q: %w", id, ErrNotFound)
		}
		d.Note = note
		m[id] = d
		return nil
	})
}

// edit applies fn to the devices as they are on disk now, not as we last loaded them, so
// two provisioning runs (or one and a running gateway) do not lose each other's changes;
// then it writes the file and swaps the result in.
func (r *Registry) edit(fn func(map[string]Device) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	unlock, err := lockFile(r.path)
	if err != nil {
		return err
	}
	defer unlock()
	m, err := readFile(r.path)
	if err != nil {
		return err
	}
	if err := fn(m); err != nil {
		return err
	}
	owner, err := ownerOf(r.path)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if err := writeFileAtomic(r.path, encode(m), owner); err != nil {
		return err
	}
	r.devices.Store(&m)
	return nil
}

func newKey(rnd io.Reader) (Key, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var k Key
	if _, err := io.ReadFull(rnd, k[:]); err != nil {
		return Key{}, fmt.Errorf("registry: generating key: %w", err)
	}
	if k == (Key{}) {
		return Key{}, errors.New("registry: generating key: random source returned all zeros")
	}
	return k, nil
}
