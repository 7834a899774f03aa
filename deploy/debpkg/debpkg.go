// Package debpkg builds the fotagate Debian package: it compiles the gateway binary for a
// Debian architecture and packs it, the systemd unit, the example configuration and the
// maintainer scripts as deploy/nfpm.yaml describes, with nfpm used as a library. It is the
// last step of the project's flow, after the code: deploy/cmd/fotagate-pkg runs it, and its
// test installs the result into a scratch root with dpkg.
package debpkg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// ConfigFile is the nfpm configuration, relative to the repository root.
const ConfigFile = "deploy/nfpm.yaml"

// mainPackage is the command that goes into /usr/bin/fotagate.
const mainPackage = "./gateway/cmd/fotagate"

// DefaultMaintainer fills the Maintainer field until the project names a real address.
const DefaultMaintainer = "The fotagate authors <maintainers@fotagate.invalid>"

// ErrBadOptions wraps every error about Options, so a caller can tell a usage mistake from a
// failed build.
var ErrBadOptions = errors.New("debpkg")

// goTarget is how Go builds for one Debian architecture.
type goTarget struct{ goarch, goarm string }

// arches are the Debian architectures the package can be built for: those a gateway
// plausibly runs on (PCs, Raspberry Pis and other boards).
var arches = map[string]goTarget{
	"amd64":   {"amd64", ""},
	"arm64":   {"arm64", ""},
	"armhf":   {"arm", "7"},
	"i386":    {"386", ""},
	"riscv64": {"riscv64", ""},
}

// Arches lists the Debian architectures Build accepts.
func Arches() []string {
	list := make([]string, 0, len(arches))
	for a := range arches {
		list = append(list, a)
	}
	sort.Strings(list)
	return list
}

// HostArch is the Debian architecture of the machine running this program, or "" if the
// package cannot be built for it.
func HostArch() string {
	for a, t := range arches {
		if t.goarch == runtime.GOARCH {
			return a
		}
	}
	return ""
}

// Options say what to build.
type Options struct {
	Root       string    // repository root: the directory holding go.mod
	Version    string    // semver such as 1.2.0 or 1.2.0-rc.1; a leading "v" is dropped
	Arch       string    // a Debian architecture from Arches
	OutDir     string    // directory for the .deb, created if missing
	Maintainer string    // "Name <email>"; empty means DefaultMaintainer
	MTime      time.Time // time stamp of every file in the package; zero means now
	// Binary is a fotagate binary built already for Arch and Version (see BuildBinary);
	// empty means Build compiles one.
	Binary string
	// GoCmd is the go command; empty means "go" from PATH.
	GoCmd string
	// Compression of the package's data: gzip, xz, zstd or none. Empty means what
	// deploy/nfpm.yaml says (gzip, which every dpkg reads; zstd needs dpkg 1.21.18).
	Compression string
}

// Debian versions must start with a digit; semver adds the "-" prerelease and "+" build
// parts, which nfpm maps to Debian's "~" and "+".
var versionRE = regexp.MustCompile(`^[0-9][0-9A-Za-z.+-]*$`)

func (o *Options) check() error {
	o.Version = strings.TrimPrefix(o.Version, "v")
	if !versionRE.MatchString(o.Version) {
		return fmt.Errorf("%w: version %q: give a semantic version such as 1.2.0 or 1.2.0-rc.1", ErrBadOptions, o.Version)
	}
	if _, ok := arches[o.Arch]; !ok {
		return fmt.Errorf("%w: architecture %q: use one of %s", ErrBadOptions, o.Arch, strings.Join(Arches(), ", "))
	}
	if _, err := os.Stat(filepath.Join(o.Root, "go.mod")); err != nil {
		return fmt.Errorf("%w: %s is not the repository root (no go.mod): %v", ErrBadOptions, o.Root, err)
	}
	switch o.Compression {
	case "", "gzip", "xz", "zstd", "none":
	default:
		return fmt.Errorf("%w: compression %q: use gzip, xz, zstd or none", ErrBadOptions, o.Compression)
	}
	if o.OutDir == "" {
		return fmt.Errorf("%w: no output directory", ErrBadOptions)
	}
	if o.Maintainer == "" {
		o.Maintainer = DefaultMaintainer
	}
	if o.GoCmd == "" {
		o.GoCmd = "go"
	}
	return nil
}

// Build compiles the gateway (unless opts.Binary is set) and writes the Debian package into
// opts.OutDir, named as Debian names packages: fotagate_<version>_<arch>.deb. It returns
// the package's path.
func Build(ctx context.Context, opts Options) (string, error) {
	if err := opts.check(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return "", err
	}
	if opts.Binary == "" {
		tmp, err := os.MkdirTemp(opts.OutDir, ".fotagate-build-*")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		opts.Binary = filepath.Join(tmp, "fotagate")
		if err := BuildBinary(ctx, opts, opts.Binary); err != nil {
			return "", err
		}
	}
	info, err := packageInfo(opts)
	if err != nil {
		return "", err
	}
	return writeDeb(info, opts.OutDir)
}

// BuildBinary compiles the fotagate command for opts.Arch into out: static (no cgo), with
// paths trimmed so the build is reproducible, symbols stripped as Debian ships binaries,
// and opts.Version as what `fotagate version` prints.
func BuildBinary(ctx context.Context, opts Options, out string) error {
	if err := opts.check(); err != nil {
		return err
	}
	t := arches[opts.Arch]
	cmd := exec.CommandContext(ctx, opts.GoCmd, "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+opts.Version,
		"-o", out, mainPackage)
	cmd.Dir = opts.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+t.goarch)
	if t.goarm != "" {
		cmd.Env = append(cmd.Env, "GOARM="+t.goarm)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", mainPackage, opts.Arch, err, stderr.Bytes())
	}
	return nil
}

// packageInfo reads deploy/nfpm.yaml with the variables filled in and turns its relative
// paths into paths under the repository root, so the build does not depend on the working
// directory.
func packageInfo(opts Options) (*nfpm.Info, error) {
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{
		"FOTAGATE_VERSION":    opts.Version,
		"FOTAGATE_ARCH":       opts.Arch,
		"FOTAGATE_BIN":        bin,
		"FOTAGATE_MAINTAINER": opts.Maintainer,
	}
	var unknown []string
	mapping := func(name string) string {
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, name)
		}
		return v
	}
	path := filepath.Join(opts.Root, ConfigFile)
	cfg, err := nfpm.ParseFileWithEnvMapping(path, mapping)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// nfpm also expands variables of its own (passphrases for signing); ours must all be
	// known, or a misspelt one would silently become empty.
	for _, name := range unknown {
		if strings.HasPrefix(name, "FOTAGATE_") {
			return nil, fmt.Errorf("%s: unknown variable ${%s}", path, name)
		}
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	inRoot := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(opts.Root, p)
	}
	for _, c := range info.Contents {
		if c.Type != files.TypeSymlink {
			c.Source = inRoot(c.Source)
		}
	}
	s := &info.Scripts
	s.PreInstall, s.PostInstall = inRoot(s.PreInstall), inRoot(s.PostInstall)
	s.PreRemove, s.PostRemove = inRoot(s.PreRemove), inRoot(s.PostRemove)
	if !opts.MTime.IsZero() {
		info.MTime = opts.MTime.UTC()
	}
	if opts.Compression != "" {
		info.Deb.Compression = opts.Compression
	}
	if err := nfpm.Validate(info); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// writeDeb packs info into dir through a temporary file, so a failed build never leaves a
// truncated package under the final name.
func writeDeb(info *nfpm.Info, dir string) (path string, err error) {
	path = filepath.Join(dir, deb.Default.ConventionalFileName(info))
	f, err := os.CreateTemp(dir, ".fotagate-*.deb")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := deb.Default.Package(info, f); err != nil {
		return "", fmt.Errorf("packing %s: %w", filepath.Base(path), err)
	}
	if err := f.Chmod(0o644); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// FindRoot returns the repository root: dir or the nearest parent holding go.mod.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w: no go.mod in %s or above it: run this inside the fotagate repository", ErrBadOptions, dir)
		}
	}
}
