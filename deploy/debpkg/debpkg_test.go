package debpkg_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fotagate/fotagate/deploy/debpkg"
)

// mtime is the fixed time stamp the test packages carry, so two builds can be compared.
var mtime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := debpkg.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// need fails the test when a Debian tool the test drives is missing.
func need(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found (%v): run `make deps`, which installs the Debian package %s", tool, err, pkg)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBuildRejectsBadOptions(t *testing.T) {
	root := repoRoot(t)
	good := debpkg.Options{Root: root, Version: "1.2.0", Arch: "amd64", OutDir: t.TempDir()}
	for _, tc := range []struct {
		name string
		edit func(*debpkg.Options)
		want string
	}{
		{"empty version", func(o *debpkg.Options) { o.Version = "" }, "version"},
		{"version without a leading digit", func(o *debpkg.Options) { o.Version = "latest" }, "version"},
		{"version with a space", func(o *debpkg.Options) { o.Version = "1.0 beta" }, "version"},
		{"version that would inject linker flags", func(o *debpkg.Options) { o.Version = "1.0' -X main.x=y" }, "version"},
		{"unknown architecture", func(o *debpkg.Options) { o.Arch = "sparc" }, "architecture"},
		{"Go name instead of the Debian one", func(o *debpkg.Options) { o.Arch = "386" }, "architecture"},
		{"root without go.mod", func(o *debpkg.Options) { o.Root = t.TempDir() }, "go.mod"},
		{"no output directory", func(o *debpkg.Options) { o.OutDir = "" }, "output"},
		{"unknown compression", func(o *debpkg.Options) { o.Compression = "bzip2" }, "compression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			// Rejected before anything is compiled, so this is quick.
			_, err := debpkg.Build(context.Background(), o)
			if !errors.Is(err, debpkg.ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want ErrBadOptions naming %q", err, tc.want)
			}
		})
	}
}

func TestHostArchIsBuildable(t *testing.T) {
	a := debpkg.HostArch()
	if a == "" {
		t.Skip("no Debian package for this machine's architecture")
	}
	found := false
	for _, b := range debpkg.Arches() {
		found = found || a == b
	}
	if !found {
		t.Fatalf("HostArch %q is not in Arches %v", a, debpkg.Arches())
	}
}

// entry is one line of `dpkg-deb --contents`.
type entry struct{ perm, owner string }

func contents(t *testing.T, deb string) map[string]entry {
	t.Helper()
	m := map[string]entry{}
	for _, line := range strings.Split(strings.TrimSpace(output(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line) // perm owner/group size date time path [-> target]
		if len(f) < 6 {
			t.Fatalf("dpkg-deb --contents line %q", line)
		}
		m[f[5]] = entry{f[0], f[1]}
	}
	return m
}

func controlFields(t *testing.T, deb string) map[string]string {
	t.Helper()
	m := map[string]string{}
	var last string
	for _, line := range strings.Split(output(t, "dpkg-deb", "--field", deb), "\n") {
		if strings.HasPrefix(line, " ") {
			m[last] += "\n" + line
			continue
		}
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k], last = v, k
		}
	}
	return m
}

// TestDebianPackage builds the real package once and checks it the way dpkg sees it, then
// installs, upgrades and purges it in a scratch root.
func TestDebianPackage(t *testing.T) {
	need(t, "dpkg-deb", "dpkg")
	arch := debpkg.HostArch()
	if arch == "" {
		t.Skip("no Debian package for this machine's architecture")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	// Uncompressed: nfpm's gzip takes 20 to 50 s for this package under -race, and nothing
	// checked here depends on it. deploy/cmd/fotagate-pkg's test builds one with the
	// configured compression.
	opts := debpkg.Options{
		Root: root, Version: "1.2.0", Arch: arch, OutDir: filepath.Join(dir, "dist"), MTime: mtime,
		Compression: "none",
	}
	start := time.Now()
	bin := filepath.Join(dir, "fotagate")
	if err := debpkg.BuildBinary(ctxT(t), opts, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("go build: %v", time.Since(start).Round(time.Millisecond))
	opts.Binary = bin
	deb, err := debpkg.Build(ctxT(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(opts.OutDir, "fotagate_1.2.0_"+arch+".deb"); deb != want {
		t.Fatalf("package at %s, want %s", deb, want)
	}

	t.Run("control fields", func(t *testing.T) {
		f := controlFields(t, deb)
		for k, want := range map[string]string{
			"Package":      "fotagate",
			"Version":      "1.2.0",
			"Architecture": arch,
			"Section":      "net",
			"Priority":     "optional",
			"Maintainer":   debpkg.DefaultMaintainer,
			"Depends":      "adduser",
			"Recommends":   "ca-certificates",
			"Homepage":     "https://github.com/fotagate/fotagate",
		} {
			if f[k] != want {
				t.Errorf("%s: %q, want %q", k, f[k], want)
			}
		}
		if !strings.HasPrefix(f["Description"], "Secure firmware-over-the-air gateway") || !strings.Contains(f["Description"], "\n ") {
			t.Errorf("Description wants a synopsis and an extended description, got %q", f["Description"])
		}
	})

	t.Run("files, owners and modes", func(t *testing.T) {
		want := map[string]entry{
			"./usr/bin/fotagate":                                   {"-rwxr-xr-x", "root/root"},
			"./lib/systemd/system/fotagate.service":                {"-rw-r--r--", "root/root"},
			"./etc/fotagate/":                                      {"drwxr-xr-x", "root/root"},
			"./etc/fotagate/fotagate.yaml":                         {"-rw-r-----", "root/fotagate"},
			"./usr/share/doc/fotagate/README.md":                   {"-rw-r--r--", "root/root"},
			"./usr/share/doc/fotagate/copyright":                   {"-rw-r--r--", "root/root"},
			"./usr/share/doc/fotagate/examples/low-port.conf":      {"-rw-r--r--", "root/root"},
			"./usr/share/doc/fotagate/examples/upstream/Caddyfile": {"-rw-r--r--", "root/root"},
			"./usr/share/doc/fotagate/examples/upstream/serve.sh":  {"-rwxr-xr-x", "root/root"},
		}
		got := contents(t, deb)
		for path, w := range want {
			if g, ok := got[path]; !ok {
				t.Errorf("%s missing", path)
			} else if g != w {
				t.Errorf("%s: %s %s, want %s %s", path, g.perm, g.owner, w.perm, w.owner)
			}
		}
		for path, g := range got {
			if _, ok := want[path]; !ok && !strings.HasPrefix(g.perm, "d") {
				t.Errorf("unexpected file %s in the package", path)
			}
			if strings.HasPrefix(g.perm, "d") && g.owner != "root/root" {
				t.Errorf("directory %s owned by %s, want root/root", path, g.owner)
			}
		}
	})

	t.Run("conffiles", func(t *testing.T) {
		if got := output(t, "dpkg-deb", "--info", deb, "conffiles"); got != "/etc/fotagate/fotagate.yaml\n" {
			t.Fatalf("conffiles %q, want only /etc/fotagate/fotagate.yaml", got)
		}
	})

	x := filepath.Join(dir, "extracted")
	output(t, "dpkg-deb", "-x", deb, x)

	t.Run("packed files are the sources", func(t *testing.T) {
		for dst, src := range map[string]string{
			"lib/systemd/system/fotagate.service":                "deploy/systemd/fotagate.service",
			"etc/fotagate/fotagate.yaml":                         "deploy/fotagate.yaml",
			"usr/share/doc/fotagate/README.md":                   "deploy/README.md",
			"usr/share/doc/fotagate/copyright":                   "LICENSE",
			"usr/share/doc/fotagate/examples/low-port.conf":      "deploy/systemd/low-port.conf",
			"usr/share/doc/fotagate/examples/upstream/Caddyfile": "deploy/upstream/Caddyfile",
			"usr/share/doc/fotagate/examples/upstream/serve.sh":  "deploy/upstream/serve.sh",
			"usr/bin/fotagate":                                   bin,
		} {
			if !filepath.IsAbs(src) {
				src = filepath.Join(root, src)
			}
			sameFile(t, filepath.Join(x, dst), src)
		}
	})

	t.Run("maintainer scripts", func(t *testing.T) {
		for script, src := range map[string]string{
			"postinst": "deploy/debian/postinst",
			"prerm":    "deploy/debian/prerm",
			"postrm":   "deploy/debian/postrm",
		} {
			got := output(t, "dpkg-deb", "--info", deb, script)
			want, err := os.ReadFile(filepath.Join(root, src))
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s", script, src)
			}
			// dash is Debian's /bin/sh: the scripts must parse with it, not just with bash.
			output(t, "dash", "-n", filepath.Join(root, src))
		}
	})

	t.Run("packed binary runs", func(t *testing.T) {
		fotagate := filepath.Join(x, "usr/bin/fotagate")
		if got := output(t, fotagate, "version"); got != "fotagate 1.2.0\n" {
			t.Errorf("version printed %q, want the package version", got)
		}
		help := output(t, fotagate, "serve", "--help")
		for _, want := range []string{"--config", "/etc/fotagate/fotagate.yaml", "SIGHUP"} {
			if !strings.Contains(help, want) {
				t.Errorf("serve --help lacks %q:\n%s", want, help)
			}
		}
		f, err := elf.Open(fotagate)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary is dynamically linked; the package promises a static one (CGO_ENABLED=0)")
			}
		}
		if f.Section(".symtab") != nil {
			t.Error("binary has a symbol table; Debian ships stripped binaries (-ldflags -s -w)")
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		o := opts
		o.OutDir = filepath.Join(dir, "again")
		again, err := debpkg.Build(ctxT(t), o)
		if err != nil {
			t.Fatal(err)
		}
		sameFile(t, again, deb)
	})

	t.Run("prerelease versions sort before the release", func(t *testing.T) {
		o := opts
		o.Version, o.OutDir = "v1.3.0-rc.1", filepath.Join(dir, "rc")
		rc, err := debpkg.Build(ctxT(t), o)
		if err != nil {
			t.Fatal(err)
		}
		if want := "fotagate_1.3.0~rc.1_" + arch + ".deb"; filepath.Base(rc) != want {
			t.Fatalf("package %s, want %s", filepath.Base(rc), want)
		}
		if v := controlFields(t, rc)["Version"]; v != "1.3.0~rc.1" {
			t.Fatalf("Version %q, want 1.3.0~rc.1", v)
		}
		// dpkg's own ordering, so an rc never replaces the release it leads up to.
		output(t, "dpkg", "--compare-versions", "1.3.0~rc.1", "lt", "1.3.0")
	})

	t.Run("installs upgrades and purges in a scratch root", func(t *testing.T) {
		o := opts
		o.Version, o.OutDir = "1.2.1", filepath.Join(dir, "next")
		next, err := debpkg.Build(ctxT(t), o)
		if err != nil {
			t.Fatal(err)
		}
		testScratchInstall(t, root, deb, next)
	})
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s differs from %s", got, want)
	}
}

var tokenRE = regexp.MustCompile(`^[0-9a-f]{64}\n$`)
