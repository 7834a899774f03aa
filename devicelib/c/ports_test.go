package c_test

// Tests of the library's packaging for firmware: the esp8266-nonos port's compile check
// (ports/esp8266-nonos/check-build.sh, which `make esp8266` runs) and the Arduino / PlatformIO
// manifests and example sketch. No Arduino tool runs here (arduino-cli is not in Debian): the
// manifests are checked against their formats and the tree, and the sketch is compiled for the
// LX106 with xtensa-lx106-elf-g++ against testdata/arduino's stand-ins for the core's API.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	xtensaGCC = "xtensa-lx106-elf-gcc"
	xtensaGXX = "xtensa-lx106-elf-g++"
	xtensaNM  = "xtensa-lx106-elf-nm"
	picolibc  = "--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs"
)

// The library's warning flags (Makefile WARN).
var warnC = []string{"-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wshadow", "-Werror"}

func needTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is missing: run ./.ci/deps (gcc-xtensa-lx106, picolibc-xtensa-lx106-elf)", tool)
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// copyTree copies the files the port's check reads into a scratch tree, so a test can break
// one of them.
func copyTree(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, dir := range []string{"include", "src", "ports/esp8266-nonos"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, dir, e.Name()), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func edit(t *testing.T, path, old, repl string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s: %q not found: the test's edit point moved", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(repl), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The symbol check must fail for an SDK call the header does not declare, and for a
// declaration the port does not use; the unchanged copy passes first, so a failure is the
// edit's doing.
func TestESP8266CheckRejectsSymbolsOutsideTheHeader(t *testing.T) {
	needTool(t, xtensaGCC)
	cases := []struct {
		name, file, old, repl, want string
	}{
		{
			name: "undeclared SDK call",
			file: "ports/esp8266-nonos/fota_esp8266.c",
			old:  "FLASH void fota_esp8266_reboot(void)\n{\n",
			repl: "extern void system_restart(void);\nFLASH void fota_esp8266_reboot(void)\n{\n\tsystem_restart();\n",
			want: "used, not declared: system_restart",
		},
		{
			name: "declaration the port does not use",
			file: "ports/esp8266-nonos/esp8266_sdk.h",
			old:  "extern void system_soft_wdt_feed(void);\n",
			repl: "extern void system_soft_wdt_feed(void);\nextern void system_soft_wdt_stop(void);\n",
			want: "declared, not used: system_soft_wdt_stop",
		},
		{
			name: "malloc in the core",
			file: "src/fota_ct.c",
			old:  "#include \"fota_crypto.h\"\n",
			repl: "#include \"fota_crypto.h\"\n#include <stdlib.h>\nvoid *fota_leak(size_t n);\nvoid *fota_leak(size_t n) { return malloc(n); }\n",
			want: "the library references symbols it must not",
		},
	}
	check := func(t *testing.T, dir string) (string, error) {
		env := []string{"BUILD=" + filepath.Join(dir, "build"), "ESP8266_PAYLOADS=1024"}
		return run(t, dir, env, filepath.Join(dir, "ports/esp8266-nonos/check-build.sh"))
	}
	if out, err := check(t, copyTree(t)); err != nil {
		t.Fatalf("the unchanged copy fails the check: %v\n%s", err, out)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t)
			edit(t, filepath.Join(dir, c.file), c.old, c.repl)
			out, err := check(t, dir)
			if err == nil {
				t.Fatalf("the check passed after the edit:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("the check failed without saying %q:\n%s", c.want, out)
			}
		})
	}
}

// ---- Arduino and PlatformIO ----

// makeVar returns the files a Makefile variable lists (continuation lines joined).
func makeVar(t *testing.T, makefile []byte, name string) []string {
	t.Helper()
	joined := strings.ReplaceAll(string(makefile), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^` + name + `\s*=(.*)$`).FindStringSubmatch(joined)
	if m == nil {
		t.Fatalf("Makefile: %s not found", name)
	}
	return strings.Fields(m[1])
}

// librarySources is the library as the Makefile builds it: core, crypto and the Ed25519 option.
func librarySources(t *testing.T) []string {
	t.Helper()
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var srcs []string
	for _, v := range []string{"CRYPTO_SRCS", "CORE_SRCS", "ED25519_SRCS"} {
		srcs = append(srcs, makeVar(t, mk, v)...)
	}
	slices.Sort(srcs)
	return srcs
}

// arduinoSources is what Arduino's recursive layout compiles: every .c, .cpp and .S under src/.
func arduinoSources(t *testing.T) []string {
	t.Helper()
	var srcs []string
	err := filepath.WalkDir("src", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(p) {
		case ".c", ".cpp", ".S":
			srcs = append(srcs, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(srcs)
	return srcs
}

// readProperties parses library.properties: key=value lines, # comments, no duplicates.
func readProperties(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	props := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || v == "" {
			t.Errorf("%s:%d: not key=value: %q", path, n, line)
			continue
		}
		if _, dup := props[k]; dup {
			t.Errorf("%s:%d: %s set twice", path, n, k)
		}
		props[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return props
}

var semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// The fields of the Arduino library specification (1.5): required ones present, values in
// the allowed forms, the header it names in src/ where Arduino looks for it.
func TestArduinoLibraryProperties(t *testing.T) {
	p := readProperties(t, "library.properties")
	for _, k := range []string{"name", "version", "author", "maintainer", "sentence", "paragraph",
		"category", "url", "architectures"} {
		if p[k] == "" {
			t.Errorf("library.properties: %s missing", k)
		}
	}
	known := []string{"name", "version", "author", "maintainer", "sentence", "paragraph", "category",
		"url", "architectures", "depends", "dot_a_linkage", "includes", "precompiled", "ldflags"}
	for k := range p {
		if !slices.Contains(known, k) {
			t.Errorf("library.properties: %s is not a field of the specification", k)
		}
	}
	if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$`).MatchString(p["name"]) {
		t.Errorf("name %q: letters, digits, space, _ . -; first a letter or digit; at most 63", p["name"])
	}
	if !semver.MatchString(p["version"]) {
		t.Errorf("version %q is not MAJOR.MINOR.PATCH", p["version"])
	}
	categories := []string{"Display", "Communication", "Signal Input/Output", "Sensors",
		"Device Control", "Timing", "Data Storage", "Data Processing", "Other"}
	if !slices.Contains(categories, p["category"]) {
		t.Errorf("category %q is not one of %v", p["category"], categories)
	}
	if !strings.HasPrefix(p["url"], "https://") {
		t.Errorf("url %q: want https", p["url"])
	}
	if !slices.Contains(strings.Split(p["architectures"], ","), "esp8266") {
		t.Errorf("architectures %q: the example is for esp8266", p["architectures"])
	}
	for _, h := range strings.Split(p["includes"], ",") {
		if _, err := os.Stat(filepath.Join("src", strings.TrimSpace(h))); err != nil {
			t.Errorf("includes %q: Arduino finds headers in src/: %v", h, err)
		}
	}
	// The recursive layout: examples/<Name>/<Name>.ino and sources only under src/.
	if _, err := os.Stat("examples/FotagateUpdate/FotagateUpdate.ino"); err != nil {
		t.Error(err)
	}
}

// PlatformIO's library.json: decoded strictly into the fields its schema has, and every path
// it names exists.
func TestPlatformIOLibraryJSON(t *testing.T) {
	var lib struct {
		Name        string   `json:"name"`
		Version     string   `json:"version"`
		Description string   `json:"description"`
		Keywords    []string `json:"keywords"`
		Repository  struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"repository"`
		Authors []struct {
			Name       string `json:"name"`
			Maintainer bool   `json:"maintainer"`
		} `json:"authors"`
		License    string   `json:"license"`
		Homepage   string   `json:"homepage"`
		Frameworks []string `json:"frameworks"`
		Platforms  []string `json:"platforms"`
		Headers    []string `json:"headers"`
		Export     struct {
			Include []string `json:"include"`
		} `json:"export"`
		Build struct {
			SrcDir     string   `json:"srcDir"`
			IncludeDir string   `json:"includeDir"`
			SrcFilter  []string `json:"srcFilter"`
			Flags      []string `json:"flags"`
		} `json:"build"`
		Examples []struct {
			Name  string   `json:"name"`
			Base  string   `json:"base"`
			Files []string `json:"files"`
		} `json:"examples"`
	}
	raw, err := os.ReadFile("library.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lib); err != nil {
		t.Fatalf("library.json: %v", err)
	}
	props := readProperties(t, "library.properties")
	if lib.Name != props["name"] || lib.Version != props["version"] {
		t.Errorf("library.json %s %s, library.properties %s %s: the two must agree",
			lib.Name, lib.Version, props["name"], props["version"])
	}
	if !semver.MatchString(lib.Version) {
		t.Errorf("version %q is not MAJOR.MINOR.PATCH", lib.Version)
	}
	lic, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(lic, []byte(lib.License+" License")) {
		t.Errorf("license %q is not the repository's (%q)", lib.License, strings.SplitN(string(lic), "\n", 2)[0])
	}
	if len(lib.Authors) == 0 || lib.Repository.Type != "git" || !strings.HasPrefix(lib.Repository.URL, "https://") {
		t.Errorf("authors and a git repository over https are required: %+v %+v", lib.Authors, lib.Repository)
	}
	if !slices.Contains(lib.Frameworks, "arduino") || !slices.Contains(lib.Platforms, "espressif8266") {
		t.Errorf("frameworks %v, platforms %v: want arduino on espressif8266", lib.Frameworks, lib.Platforms)
	}
	if lib.Build.SrcDir != "src" || lib.Build.IncludeDir != "include" {
		t.Errorf("build srcDir %q includeDir %q: want src and include", lib.Build.SrcDir, lib.Build.IncludeDir)
	}
	if !slices.Equal(lib.Build.SrcFilter, []string{"+<*.c>"}) {
		t.Errorf("build srcFilter %v: this test knows only +<*.c>", lib.Build.SrcFilter)
	}
	// FOTA_MAX_PAYLOAD sizes struct fota_ctx: a value set for the library alone would differ
	// from the application's, so it belongs in the project's build_flags, not here.
	for _, f := range lib.Build.Flags {
		if strings.Contains(f, "FOTA_MAX_PAYLOAD") {
			t.Errorf("build flag %q: FOTA_MAX_PAYLOAD must be set for the whole project", f)
		}
	}
	if !strings.Contains(lib.Description, "FOTA_MAX_PAYLOAD") {
		t.Error("the description must say how FOTA_MAX_PAYLOAD is set")
	}
	for _, h := range lib.Headers {
		if _, err := os.Stat(filepath.Join(lib.Build.IncludeDir, h)); err != nil {
			t.Errorf("header %s: %v", h, err)
		}
	}
	for _, p := range lib.Export.Include {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("export %s: %v", p, err)
		}
	}
	if len(lib.Examples) == 0 {
		t.Error("no examples")
	}
	for _, ex := range lib.Examples {
		for _, f := range ex.Files {
			if _, err := os.Stat(filepath.Join(ex.Base, f)); err != nil {
				t.Errorf("example %s: %v", ex.Name, err)
			}
		}
	}
	// srcDir with +<*.c>: the top level of src/, which must be the whole library.
	var pio []string
	matches, err := filepath.Glob(filepath.Join(lib.Build.SrcDir, "*.c"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		pio = append(pio, filepath.ToSlash(m))
	}
	slices.Sort(pio)
	if want := librarySources(t); !slices.Equal(pio, want) {
		t.Errorf("PlatformIO compiles %v; the Makefile's library is %v", pio, want)
	}
}

// What Arduino compiles (every source under src/, with only src/ on the include path) is the
// library the Makefile builds, and it compiles that way for the LX106 with the library's
// warnings as errors; the sketch then compiles as C++ against the core's API stand-ins, and
// every library function it calls is one the library defines.
func TestArduinoBuildsLibraryAndSketch(t *testing.T) {
	needTool(t, xtensaGCC)
	needTool(t, xtensaGXX)
	srcs := arduinoSources(t)
	if want := librarySources(t); !slices.Equal(srcs, want) {
		t.Fatalf("Arduino compiles %v from src/; the Makefile's library is %v", srcs, want)
	}
	for _, payload := range []string{"64", "1024", "4096"} {
		t.Run("FOTA_MAX_PAYLOAD="+payload, func(t *testing.T) {
			out := t.TempDir()
			define := "-DFOTA_MAX_PAYLOAD=" + payload
			var objs []string
			for _, src := range srcs {
				obj := filepath.Join(out, strings.TrimSuffix(filepath.Base(src), ".c")+".o")
				args := append(slices.Clone(warnC), "-Os", "-mlongcalls", picolibc, "-Isrc", define,
					"-c", src, "-o", obj)
				if o, err := run(t, ".", nil, xtensaGCC, args...); err != nil {
					t.Fatalf("%s with only src/ on the include path: %v\n%s", src, err, o)
				}
				objs = append(objs, obj)
			}
			sketch := filepath.Join(out, "sketch.o")
			// As the Arduino builder does: C++, Arduino.h included first, no exceptions.
			args := []string{"-std=gnu++17", "-Os", "-mlongcalls", "-fno-exceptions", "-fno-rtti",
				"-Wall", "-Wextra", "-Werror", picolibc, "-Itestdata/arduino", "-Isrc", define,
				"-include", "Arduino.h", "-x", "c++", "-c",
				"examples/FotagateUpdate/FotagateUpdate.ino", "-o", sketch}
			if o, err := run(t, ".", nil, xtensaGXX, args...); err != nil {
				t.Fatalf("the sketch: %v\n%s", err, o)
			}
			defined, err := run(t, ".", nil, xtensaNM, append([]string{"--defined-only"}, objs...)...)
			if err != nil {
				t.Fatal(err)
			}
			undef, err := run(t, ".", nil, xtensaNM, "-u", sketch)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, l := range strings.Split(defined, "\n") {
				if f := strings.Fields(l); len(f) == 3 && f[1] == "T" {
					have[f[2]] = true
				}
			}
			calls := 0
			for _, l := range strings.Split(undef, "\n") {
				f := strings.Fields(l)
				if len(f) == 2 && strings.HasPrefix(f[1], "fota_") {
					calls++
					if !have[f[1]] {
						t.Errorf("the sketch calls %s, which the library does not define", f[1])
					}
				}
			}
			if calls < 5 {
				t.Errorf("the sketch calls %d library functions: did it compile the real example?", calls)
			}
		})
	}
}

// The port on the host, against a fake of exactly the SDK functions esp8266_sdk.h declares
// (ports/esp8266-nonos/host_test.c, ASan+UBSan): v1.json's first session through the port's
// espconn callbacks, byte for byte, with the bytes arriving in pieces; the image in the slot
// not running; the two-sector state across torn saves and sequence wrap; flag and reboot.
func TestESP8266PortSessionOnHost(t *testing.T) {
	s := loadVectors(t).Sessions[0]
	// host_test.c preloads boot counter 40 and factory sequence 3, and is built for chunk 256.
	if s.RunningSeq != 3 || s.BootCounter != 41 || s.Offer.Seq != 4 || s.MaxPayload != 256 ||
		s.Offer.Status != 0 || s.AcceptOffset != 0 {
		t.Fatalf("sessions[0] changed (%s): host_test.c assumes running 3, boot 41, offer 4, chunk 256", s.Name)
	}
	bin := filepath.Join(buildDir, "esp8266_host")
	if out, err := exec.Command("make", "-s", "BUILD="+buildDir, bin).CombinedOutput(); err != nil {
		t.Fatalf("building the host test (needs make and gcc: run ./.ci/deps): %v\n%s", err, out)
	}
	var in strings.Builder
	for _, f := range [][2]string{
		{"psk", s.PSK}, {"nd", s.NdRandom},
		{"device_id", hex.EncodeToString([]byte(s.DeviceID))},
		{"class", hex.EncodeToString([]byte(s.Class))},
		{"hello", s.Wire.Hello}, {"offer", s.Wire.Offer}, {"accept", s.Wire.Accept},
		{"data", strings.Join(s.Wire.Data, "")}, {"ack", s.Wire.Ack}, {"report", s.Wire.Report},
		{"image", s.Image},
	} {
		in.WriteString(f[0] + " " + f[1] + "\n")
	}
	vec := filepath.Join(t.TempDir(), "session0")
	if err := os.WriteFile(vec, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, vec).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), " passed, 0 failed") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	t.Log(strings.TrimSpace(string(out)))
}
