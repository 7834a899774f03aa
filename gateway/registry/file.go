package registry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fotagate/fotagate/protocol"
)

// The file format, version 1. One device per line, sorted by ID, so diffs and line numbers
// in errors point at a device:
//
//	{
//	  "version": 1,
//	  "devices": [
//	    {"id":"dev-01","class":"esp8266-a","psk":"<64 hex digits>","note":"hall"}
//	  ]
//	}
const fileVersion = 1

type fileDevice struct {
	ID    string `json:"id"`
	Class string `json:"class"`
	PSK   string `json:"psk"`
	Note  string `json:"note,omitempty"`
}

// readFile opens path, checks that it is private, and parses it.
func readFile(path string) (map[string]Device, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	defer f.Close()
	// Check the file we opened, not the name: the name could be swapped in between.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return parse(path, data)
}

// checkPrivate refuses key material that anyone but its owner can read or change, and a
// directory where others could replace the file. A sticky directory (like /tmp) is accepted:
// others cannot rename or delete our file there.
func checkPrivate(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("registry: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("registry: %w: %s has mode %04o, so other users can read or change device keys; run: chmod 600 %s",
			ErrInsecure, path, perm, ShellQuote(path))
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	if perm := di.Mode().Perm(); perm&0o022 != 0 && di.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("registry: %w: directory %s has mode %04o, so other users can replace the key file; run: chmod go-w %s",
			ErrInsecure, dir, perm, ShellQuote(dir))
	}
	return nil
}

// parse decodes the file with a streaming decoder so that every error can name its line.
// Errors never quote a key, not even a malformed one.
func parse(path string, data []byte) (map[string]Device, error) {
	at := func(off int64, format string, args ...any) error {
		return fmt.Errorf("registry: %s:%d: %w: %s", path, lineAt(data, off), ErrMalformed, fmt.Sprintf(format, args...))
	}
	// Syntax first, over the whole file: only json.Unmarshal reports offsets from the start
	// of the input (a Decoder's are relative to an internal buffer). After this the
	// streaming pass below meets only well-formed JSON, and places its errors at the start
	// of the device being decoded: one device per line, so that is the device's line.
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, at(se.Offset-1, "%v", err)
		}
		return nil, at(0, "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	jsonErr := func(err error, start int64) error { return at(start, "%v", err) }
	delim := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil {
			return jsonErr(err, dec.InputOffset())
		}
		if tok != want {
			return at(dec.InputOffset(), "want %q, got %v", want.String(), tok)
		}
		return nil
	}

	if err := delim('{'); err != nil {
		return nil, err
	}
	m := make(map[string]Device)
	lines := make(map[string]int)
	version, sawDevices := 0, false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err, dec.InputOffset())
		}
		keyOff := skipSeparators(data, dec.InputOffset())
		switch tok {
		case "version":
			if err := dec.Decode(&version); err != nil {
				return nil, jsonErr(fmt.Errorf("field version: %w", err), keyOff)
			}
			if version != fileVersion {
				return nil, at(keyOff, "version %d is not supported (this gateway reads version %d)", version, fileVersion)
			}
		case "devices":
			sawDevices = true
			if err := delim('['); err != nil {
				return nil, err
			}
			for i := 0; dec.More(); i++ {
				start := skipSeparators(data, dec.InputOffset())
				var fd fileDevice
				if err := dec.Decode(&fd); err != nil {
					return nil, jsonErr(fmt.Errorf("device %d: %w", i, err), start)
				}
				d, err := fd.device()
				if err != nil {
					return nil, at(start, "device %d (id %q): %v", i, fd.ID, err)
				}
				line := lineAt(data, start)
				if first, dup := lines[d.ID]; dup {
					return nil, fmt.Errorf("registry: %s:%d: %w: %w %q, first on line %d", path, line, ErrMalformed, ErrDuplicate, d.ID, first)
				}
				m[d.ID], lines[d.ID] = d, line
			}
			if err := delim(']'); err != nil {
				return nil, err
			}
		default:
			return nil, at(keyOff, "unknown field %q", tok)
		}
	}
	if err := delim('}'); err != nil {
		return nil, err
	}
	if version == 0 {
		return nil, at(0, `field "version" missing`)
	}
	if !sawDevices {
		return nil, at(0, `field "devices" missing`)
	}
	return m, nil
}

func (fd fileDevice) device() (Device, error) {
	d := Device{ID: fd.ID, Class: fd.Class, Note: fd.Note}
	if err := protocol.CheckDeviceID(fd.ID); err != nil {
		return d, fmt.Errorf("field id: %w", err)
	}
	if err := protocol.CheckClass(fd.Class); err != nil {
		return d, fmt.Errorf("field class: %w", err)
	}
	if len(fd.PSK) != 2*len(d.PSK) {
		return d, fmt.Errorf("field psk: want %d hex digits (%d bytes), got %d characters",
			2*len(d.PSK), len(d.PSK), len(fd.PSK))
	}
	if i := strings.IndexFunc(fd.PSK, func(r rune) bool { return !isHex(r) }); i >= 0 {
		return d, fmt.Errorf("field psk: character %d is not a hex digit", i)
	}
	hex.Decode(d.PSK[:], []byte(fd.PSK)) // cannot fail: length and digits checked above
	if d.PSK == (Key{}) {
		return d, errors.New("field psk: all zeros, which is not a key anyone generated")
	}
	return d, nil
}

func isHex(r rune) bool { return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' }

// encode writes the devices in the version 1 format, sorted by ID.
func encode(m map[string]Device) []byte {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"version\": %d,\n  \"devices\": [", fileVersion)
	for i, id := range ids {
		d := m[id]
		line, err := json.Marshal(fileDevice{ID: d.ID, Class: d.Class, PSK: hex.EncodeToString(d.PSK[:]), Note: d.Note})
		if err != nil {
			panic("registry: encoding a device: " + err.Error()) // only strings: cannot fail
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		b.Write(line)
	}
	if len(ids) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("]\n}\n")
	return b.Bytes()
}

func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

func skipSeparators(data []byte, off int64) int64 {
	for off < int64(len(data)) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
		off++
	}
	return off
}

// writeFileAtomic replaces path with data, mode 0600: a crash leaves either the old file or
// the new one, never a mix. When owner is set the new file gets that owner, so root editing
// a registry that belongs to the gateway's user does not lock the gateway out of it.
func writeFileAtomic(path string, data []byte, owner *fileOwner) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("registry: writing %s: %w", path, err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if err := owner.apply(f); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ShellQuote quotes a path for a fix-it command in a message, only when it needs quoting.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
