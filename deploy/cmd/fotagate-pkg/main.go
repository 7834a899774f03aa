// Command fotagate-pkg builds the fotagate Debian package: it compiles the gateway for a
// Debian architecture and writes dist/fotagate_<version>_<arch>.deb as deploy/nfpm.yaml
// describes. Run it from anywhere inside the repository:
//
//	go run ./deploy/cmd/fotagate-pkg --version 1.2.0
//	go run ./deploy/cmd/fotagate-pkg --version 1.2.0 --arch arm64 --out /tmp/pkgs
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/fotagate/fotagate/deploy/debpkg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
	case errors.Is(err, debpkg.ErrBadOptions) || errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "fotagate-pkg:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "fotagate-pkg:", err)
		os.Exit(1)
	}
}

// usageError is a command line this program cannot run: exit status 2, as for bad options.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("fotagate-pkg", pflag.ContinueOnError)
	version := fs.String("version", "0.0.0-dev", "package and binary `VERSION` (semver, e.g. 1.2.0 or 1.2.0-rc.1)")
	arch := fs.String("arch", debpkg.HostArch(), "Debian architecture `ARCH`: "+strings.Join(debpkg.Arches(), ", "))
	out := fs.String("out", "", "output `DIR` (default dist/ in the repository)")
	maintainer := fs.String("maintainer", debpkg.DefaultMaintainer, "Maintainer field, \"`NAME <EMAIL>`\"")
	binary := fs.String("binary", "", "package this fotagate `FILE` instead of building one (it must match --arch and --version)")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fotagate-pkg [flags]\n\nBuilds the fotagate Debian package (see deploy/README.md).\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: everything is a flag (--help lists them)", fs.Arg(0))}
	}
	root, err := debpkg.FindRoot(".")
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "dist")
	}
	path, err := debpkg.Build(ctx, debpkg.Options{
		Root: root, Version: *version, Arch: *arch, OutDir: *out,
		Maintainer: *maintainer, Binary: *binary, MTime: sourceDate(root),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// sourceDate is the time stamp the package's files get, so that building one commit twice
// gives the same bytes: SOURCE_DATE_EPOCH if set (the reproducible-builds convention), else
// the time of the commit checked out, else now.
func sourceDate(root string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0)
		}
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = root
	if b, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return time.Unix(n, 0)
		}
	}
	return time.Time{}
}
