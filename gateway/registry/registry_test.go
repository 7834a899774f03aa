package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fotagate/fotagate/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// seeded is a deterministic stand-in for crypto/rand.
func seeded(seed uint64) io.Reader { return rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}) }

func newRegistry(t *testing.T) (*Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "devices.json")
	r, err := LoadOrCreate(path, zap.NewNop())
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return r, path
}

func mustAdd(t *testing.T, r *Registry, id, class string, seed uint64) Device {
	t.Helper()
	d, err := r.Add(id, class, seeded(seed))
	if err != nil {
		t.Fatalf("Add %s: %v", id, err)
	}
	return d
}

func TestAddedDevicesLoadBack(t *testing.T) {
	r, path := newRegistry(t)
	a := mustAdd(t, r, "dev-b", "esp8266-a", 1)
	b := mustAdd(t, r, "dev-a", "esp8266-b", 2)
	if err := r.SetNote("dev-a", "hall, 2nd floor \"east\""); err != nil {
		t.Fatal(err)
	}
	b.Note = "hall, 2nd floor \"east\""
	if a.PSK == b.PSK || a.PSK == (Key{}) {
		t.Fatal("keys not fresh")
	}
	if got, ok := r.Lookup("dev-b"); !ok || got != a {
		t.Fatalf("Lookup in the editing registry = %v, %v", got, ok)
	}

	r2, err := Load(path, zap.NewNop())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, want := range []Device{a, b} {
		got, ok := r2.Lookup(want.ID)
		if !ok || got != want || got.PSK != want.PSK {
			t.Fatalf("Lookup(%s) after Load = %v (key id %s), %v; want %v (key id %s)",
				want.ID, got, got.PSK.Fingerprint(), ok, want, want.PSK.Fingerprint())
		}
	}
	if _, ok := r2.Lookup("dev-c"); ok {
		t.Fatal("Lookup found an unknown device")
	}
	if l := r2.List(); len(l) != 2 || l[0].ID != "dev-a" || l[1].ID != "dev-b" || r2.Len() != 2 {
		t.Fatalf("List = %v, want dev-a, dev-b", l)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("registry mode = %v, %v; want 0600", fi.Mode(), err)
	}
	// Edits leave nothing behind but the file and its lock.
	des, _ := os.ReadDir(filepath.Dir(path))
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != "devices.json devices.json.lock" {
		t.Fatalf("directory holds %v", names)
	}
}

func TestLoadOfMissingFileFails(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.json"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

func TestLoadRefusesFileOthersCanAccess(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o604, false}, {0o660, false}, {0o644, false},
		{0o620, false}, {0o602, false}, {0o666, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			_, path := newRegistry(t)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("Load refused mode %04o: %v", tc.mode, err)
				}
				return
			}
			if !errors.Is(err, ErrInsecure) {
				t.Fatalf("Load of mode %04o: got %v, want ErrInsecure", tc.mode, err)
			}
			if !strings.Contains(err.Error(), "run: chmod 600 "+path) {
				t.Fatalf("error does not say what to run: %v", err)
			}
		})
	}
}

func TestLoadRefusesDirectoryOthersCanWrite(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o700, true}, {0o755, true}, {0o777 | os.ModeSticky, true},
		{0o777, false}, {0o770, false}, {0o757, false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			_, path := newRegistry(t)
			dir := filepath.Dir(path)
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(dir, 0o700)
			_, err := Load(path, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("Load refused directory mode %04o: %v", tc.mode, err)
				}
				return
			}
			if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "run: chmod go-w "+dir) {
				t.Fatalf("Load with directory mode %04o: got %v, want ErrInsecure naming chmod go-w", tc.mode, err)
			}
		})
	}
}

func TestChmodHintQuotesOddPaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my keys")
	path := filepath.Join(dir, "it's.json")
	if _, err := LoadOrCreate(path, nil); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	_, err := Load(path, nil)
	if want := `chmod 600 '` + dir + `/it'\''s.json'`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want a hint containing %s", err, want)
	}
}

func TestAddRefusesRegisteredID(t *testing.T) {
	r, path := newRegistry(t)
	d := mustAdd(t, r, "dev-1", "c1", 1)
	before, _ := os.ReadFile(path)
	if _, err := r.Add("dev-1", "c2", seeded(2)); !errors.Is(err, ErrExists) {
		t.Fatalf("second Add: got %v, want ErrExists", err)
	}
	if got, _ := r.Lookup("dev-1"); got != d {
		t.Fatal("refused Add changed the device")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("refused Add rewrote the file")
	}
}

func TestAddRefusesInvalidIDOrClass(t *testing.T) {
	r, _ := newRegistry(t)
	for _, tc := range []struct{ id, class string }{
		{"", "c"}, {"dev 1", "c"}, {"dev/1", "c"}, {strings.Repeat("x", protocol.MaxIDLen+1), "c"},
		{"dev", ""}, {"dev", "a:b"}, {"dev", strings.Repeat("c", protocol.MaxClassLen+1)},
	} {
		if _, err := r.Add(tc.id, tc.class, seeded(1)); !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("Add(%q, %q): got %v, want protocol.ErrMalformed", tc.id, tc.class, err)
		}
	}
	if r.Len() != 0 {
		t.Fatal("invalid device registered")
	}
}

func TestAddFailsWhenRandomnessFails(t *testing.T) {
	r, _ := newRegistry(t)
	if _, err := r.Add("dev", "c", strings.NewReader("short")); err == nil {
		t.Fatal("Add with a failing random source succeeded")
	}
	if _, err := r.Add("dev", "c", bytes.NewReader(make([]byte, 32))); err == nil {
		t.Fatal("Add accepted an all-zero key")
	}
	if r.Len() != 0 {
		t.Fatal("device registered without a key")
	}
}

func TestRotateReplacesOnlyTheKey(t *testing.T) {
	r, path := newRegistry(t)
	d := mustAdd(t, r, "dev-1", "c1", 1)
	r.SetNote("dev-1", "n")
	d2, err := r.Rotate("dev-1", seeded(9))
	if err != nil {
		t.Fatal(err)
	}
	if d2.PSK == d.PSK || d2.ID != d.ID || d2.Class != d.Class || d2.Note != "n" {
		t.Fatalf("Rotate gave %+v (key id %s), old key id %s", d2, d2.PSK.Fingerprint(), d.PSK.Fingerprint())
	}
	r2, _ := Load(path, nil)
	if got, _ := r2.Lookup("dev-1"); got.PSK != d2.PSK {
		t.Fatal("rotated key not saved")
	}
	if _, err := r.Rotate("nope", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rotate of an unknown device: got %v, want ErrNotFound", err)
	}
}

func TestRemoveDeletesDevice(t *testing.T) {
	r, path := newRegistry(t)
	mustAdd(t, r, "dev-1", "c", 1)
	mustAdd(t, r, "dev-2", "c", 2)
	if err := r.Remove("dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup("dev-1"); ok {
		t.Fatal("removed device still found")
	}
	r2, _ := Load(path, nil)
	if _, ok := r2.Lookup("dev-1"); ok || r2.Len() != 1 {
		t.Fatal("removal not saved")
	}
	if err := r.Remove("dev-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: got %v, want ErrNotFound", err)
	}
}

const goodKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func writeRegistry(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "devices.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadRefusesDuplicateIDs(t *testing.T) {
	path := writeRegistry(t, `{
  "version": 1,
  "devices": [
    {"id":"dev-1","class":"c","psk":"`+goodKey+`"},
    {"id":"dev-2","class":"c","psk":"`+goodKey+`"},
    {"id":"dev-1","class":"d","psk":"`+goodKey+`"}
  ]
}`)
	_, err := Load(path, nil)
	if !errors.Is(err, ErrDuplicate) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrDuplicate", err)
	}
	if !strings.Contains(err.Error(), path+":6:") || !strings.Contains(err.Error(), "first on line 4") {
		t.Fatalf("error does not name both lines: %v", err)
	}
}

func TestLoadRefusesMalformedFileNamingLineAndField(t *testing.T) {
	dev := func(id, class, psk string) string {
		return `{"id":"` + id + `","class":"` + class + `","psk":"` + psk + `"}`
	}
	file := func(devices ...string) string {
		return "{\n  \"version\": 1,\n  \"devices\": [\n    " + strings.Join(devices, ",\n    ") + "\n  ]\n}\n"
	}
	ok := dev("dev-1", "c", goodKey)
	badHex := "zz" + goodKey[2:]
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"bad hex", file(ok, dev("dev-2", "c", badHex)), []string{":5:", "field psk", "character 0 is not a hex digit"}},
		{"short key", file(dev("dev-2", "c", goodKey[:62]), ok), []string{":4:", "field psk", "got 62 characters"}},
		{"long key", file(ok, dev("dev-2", "c", goodKey+"00")), []string{":5:", "field psk", "got 66"}},
		{"zero key", file(dev("dev-2", "c", strings.Repeat("0", 64))), []string{":4:", "field psk", "all zeros"}},
		{"bad id", file(ok, ok[:0]+dev("dev 2", "c", goodKey)), []string{":5:", "field id", "byte 3"}},
		{"empty id", file(dev("", "c", goodKey)), []string{":4:", "field id"}},
		{"bad class", file(dev("dev-2", "c/d", goodKey)), []string{":4:", "field class"}},
		{"unknown device field", file(`{"id":"dev-2","class":"c","psk":"` + goodKey + `","pks":"x"}`), []string{":4:", `unknown field "pks"`}},
		{"wrong type", file(`{"id":2,"class":"c","psk":"` + goodKey + `"}`), []string{":4:", "id"}},
		{"syntax error", "{\n  \"version\": 1,\n  \"devices\": [\n    " + ok + ",\n    {\"id\": \"x\" \"class\"}\n  ]\n}", []string{":5:", "invalid character"}},
		{"truncated", "{\n  \"version\": 1,\n  \"devices\": [\n    " + ok, []string{":4:", "unexpected end"}},
		{"missing version", "{\"devices\": []}", []string{`"version" missing`}},
		{"future version", "{\n\"version\": 2, \"devices\": []}", []string{":2:", "version 2 is not supported"}},
		{"missing devices", "{\"version\": 1}", []string{`"devices" missing`}},
		{"unknown top field", "{\"version\": 1, \"devices\": [],\n\"keys\": []}", []string{":2:", `unknown field "keys"`}},
		{"not an object", "[]", []string{":1:", "want \"{\""}},
		{"trailing data", file(ok) + "{}", []string{":7:", "after top-level value"}},
		{"empty file", "", []string{":1:", "unexpected end"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeRegistry(t, tc.content)
			_, err := Load(path, nil)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, goodKey[4:20]) {
				t.Errorf("error quotes key material: %v", err)
			}
		})
	}
}

func TestFailedReloadKeepsPreviousDevices(t *testing.T) {
	r, path := newRegistry(t)
	d := mustAdd(t, r, "dev-1", "c", 1)
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Reload of a broken file: got %v, want ErrMalformed", err)
	}
	if got, ok := r.Lookup("dev-1"); !ok || got != d {
		t.Fatal("failed Reload dropped the devices")
	}
	os.Chmod(path, 0o644)
	if err := r.Reload(); !errors.Is(err, ErrInsecure) {
		t.Fatalf("Reload of a readable file: got %v, want ErrInsecure", err)
	}
}

func TestReloadPicksUpAnotherProcessesEdits(t *testing.T) {
	r, path := newRegistry(t)
	mustAdd(t, r, "dev-1", "c", 1)
	other, err := Load(path, nil) // stands in for `fotagate keys add` while the gateway runs
	if err != nil {
		t.Fatal(err)
	}
	d2 := mustAdd(t, other, "dev-2", "c", 2)
	if _, ok := r.Lookup("dev-2"); ok {
		t.Fatal("device visible before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Lookup("dev-2"); !ok || got != d2 {
		t.Fatal("Reload did not pick up the new device")
	}
}

func TestConcurrentLookupDuringReload(t *testing.T) {
	r, path := newRegistry(t)
	writer, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	stable := mustAdd(t, writer, "stable", "c", 1)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if d, ok := r.Lookup("stable"); !ok || d != stable {
					t.Error("stable device missing or changed during reload")
					return
				}
				if d, ok := r.Lookup("churn"); ok && (d.Class != "c" || d.PSK == (Key{})) {
					t.Error("half-loaded device seen")
					return
				}
				r.List()
			}
		}()
	}
	for i := range 30 {
		if i%2 == 0 {
			mustAdd(t, writer, "churn", "c", uint64(i+2))
		} else if err := writer.Remove("churn"); err != nil {
			t.Fatal(err)
		}
		if err := r.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestConcurrentEditorsDoNotLoseDevices(t *testing.T) {
	_, path := newRegistry(t)
	var wg sync.WaitGroup
	for w := range 4 {
		r, err := Load(path, nil) // one Registry per "process"
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				if _, err := r.Add(fmt.Sprintf("dev-%d-%d", w, i), "c", nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	r, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 20 {
		t.Fatalf("%d devices after 20 concurrent adds", r.Len())
	}
}

// secretForms are the ways a key could appear in a log line.
func secretForms(k Key) []string {
	forms := []string{
		hex.EncodeToString(k[:]), strings.ToUpper(hex.EncodeToString(k[:])),
		base64.StdEncoding.EncodeToString(k[:]), base64.RawURLEncoding.EncodeToString(k[:]),
		fmt.Sprint([32]byte(k))[1:20], // "[12 34 ..." as fmt prints arrays
		strings.Trim(strings.ReplaceAll(fmt.Sprint([32]byte(k)), " ", ","), "[]")[:20], // JSON array
		string(k[:8]),
	}
	return forms
}

func TestDeviceNeverLogsOrPrintsItsKey(t *testing.T) {
	r, _ := newRegistry(t)
	d := mustAdd(t, r, "dev-1", "c", 7)
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("device", zap.Any("device", d))
	log.Info("device", zap.Object("device", d))
	log.Info("device", zap.Reflect("device", d))
	log.Info("device", zap.Any("psk", d.PSK))
	log.Info("device", zap.Stringer("psk", d.PSK))
	log.Info("device", zap.Reflect("psk", d.PSK))
	log.Info("devices", zap.Any("list", r.List()))
	log.Sugar().Infow("device", "d", d, "psk", d.PSK)
	log.Sugar().Infof("%v %+v %#v %s %x %X %q %d", d, d, d, d.PSK, d.PSK, d.PSK, d.PSK, d.PSK)
	out := buf.String()
	js, _ := json.Marshal(d)
	out += string(js) + fmt.Sprintf("%v|%+v|%#v|%x|%s", d, &d, d, d.PSK, d.PSK.String())

	for _, form := range secretForms(d.PSK) {
		if strings.Contains(out, form) {
			t.Fatalf("output contains the key (as %q):\n%s", form, out)
		}
	}
	if !strings.Contains(buf.String(), `"id":"dev-1"`) || !strings.Contains(buf.String(), d.PSK.Fingerprint()) {
		t.Fatalf("log line lost the non-secret fields:\n%s", buf.String())
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatal("no redaction marker")
	}
}

func TestFingerprintIsStableAndDistinct(t *testing.T) {
	var a, b Key
	b[31] = 1
	fa, fa2, fb := a.Fingerprint(), a.Fingerprint(), b.Fingerprint()
	if fa == fb || len(fa) != 16 || fa != fa2 {
		t.Fatal("fingerprints not stable or not distinct")
	}
	if strings.Contains(hex.EncodeToString(b[:]), b.Fingerprint()) {
		t.Fatal("fingerprint is the key")
	}
}
