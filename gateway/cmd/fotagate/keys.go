package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/protocol"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newKeysCmd() *cobra.Command {
	reg := &keysRegistry{}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Provision devices: add, rotate, list, remove and export their pre-shared keys",
		Long: `Manage the device registry: for each device its ID, its class and a 256-bit pre-shared
key that the device and the gateway share.

add and rotate generate keys; add, rotate and show export one for the device with
--key-file (JSON key file for the Go device), --header (C header for the C device library)
or --json (provisioning JSON on stdout). Files are written mode 0600. A key is printed only
with --json; everything else shows its key id, a fingerprint that names the key without
revealing it.

The registry is the file given by --registry, else the one the gateway's configuration
(--config, default ` + config.DefaultPath + ` if it exists) names, else
` + defaultRegistryPath() + `. It must be mode 0600. A running gateway picks up
changes when it reloads the registry (SIGHUP).`,
		Example: `  fotagate keys add hall-1 --class esp-relay --header firmware/include
  fotagate keys list
  fotagate keys rotate hall-1 --key-file hall-1.json`,
		Args: cobra.NoArgs, // so that `fotagate keys frob` is an unknown command, not help
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().StringVar(&reg.flag, "registry", "",
		"device registry `FILE` (default: the one the configuration names)")
	cmd.PersistentFlags().StringVarP(&reg.config, "config", "c", config.DefaultPath,
		"gateway configuration `FILE` whose registry to use")
	cmd.AddCommand(
		newKeysAddCmd(reg), newKeysRotateCmd(reg), newKeysShowCmd(reg),
		newKeysListCmd(reg), newKeysRemoveCmd(reg),
	)
	return cmd
}

func newKeysAddCmd(reg *keysRegistry) *cobra.Command {
	var (
		class, note string
		out         provisionOutput
	)
	cmd := &cobra.Command{
		Use:   "add DEVICE --class CLASS",
		Short: "Register a device with a fresh key and export it for the device",
		Long: `Register DEVICE in class CLASS with a fresh random key, creating the registry if
it does not exist. An ID already registered is refused: rotate replaces a key.
Without --key-file, --header or --json the key is not shown anywhere; show exports it later.`,
		Example: "  fotagate keys add hall-1 --class esp-relay --note \"hall, 2nd floor\" --key-file hall-1.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			// Checked before the registry is opened, so a typo does not create one.
			if err := protocol.CheckDeviceID(id); err != nil {
				return badName("DEVICE", err)
			}
			if err := protocol.CheckClass(class); err != nil {
				return badName("--class", err)
			}
			if err := checkNote(note); err != nil {
				return err
			}
			path := reg.path()
			if err := out.prepare(path); err != nil {
				return err
			}
			r, err := reg.load(true)
			if err != nil {
				return err
			}
			d, err := r.Add(id, class, rand.Reader)
			if errors.Is(err, registry.ErrExists) {
				return &hintError{err: err, msg: fmt.Sprintf(
					"device %s is already in %s: %s gives it a new key; %s exports its current one",
					id, path, reg.cmdline("rotate", id), reg.cmdline("show", id, "--key-file", "FILE"))}
			}
			if err != nil {
				return err
			}
			if note != "" {
				if err := r.SetNote(id, note); err != nil {
					return out.exportFailed(reg, d, "setting its note", err)
				}
			}
			return out.emit(cmd, reg, d, fmt.Sprintf("Added device %s (class %s) to %s, key id %s.",
				d.ID, d.Class, path, d.PSK.Fingerprint()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&class, "class", "", "device `CLASS`: which firmware the device is offered")
	f.StringVar(&note, "note", "", "free `TEXT` for people, such as where the device is installed")
	out.addFlags(f)
	_ = cmd.MarkFlagRequired("class") // fails only for an unknown flag name
	return cmd
}

func newKeysRotateCmd(reg *keysRegistry) *cobra.Command {
	var out provisionOutput
	cmd := &cobra.Command{
		Use:   "rotate DEVICE",
		Short: "Give a device a fresh key and export it for the device",
		Long: `Replace DEVICE's key with a fresh random one. The old key stops working when the
gateway next reloads the registry, so provision the device with the new key.
Without --key-file, --header or --json the new key is not shown anywhere; show exports it later.`,
		Example: "  fotagate keys rotate hall-1 --header firmware/include",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			path := reg.path()
			if err := out.prepare(path); err != nil {
				return err
			}
			r, err := reg.load(false)
			if err != nil {
				return err
			}
			old, _ := r.Lookup(id) // for the summary only; Rotate decides whether it exists
			d, err := r.Rotate(id, rand.Reader)
			if err != nil {
				return reg.notFound(id, err)
			}
			return out.emit(cmd, reg, d, fmt.Sprintf(
				"Rotated the key of device %s (class %s) in %s: key id %s, was %s.\n"+
					"The old key stops working when the gateway next reloads the registry (SIGHUP): "+
					"provision the device with the new one.",
				d.ID, d.Class, path, d.PSK.Fingerprint(), old.PSK.Fingerprint()))
		},
	}
	out.addFlags(cmd.Flags())
	return cmd
}

func newKeysShowCmd(reg *keysRegistry) *cobra.Command {
	var out provisionOutput
	cmd := &cobra.Command{
		Use:   "show DEVICE",
		Short: "Show a device, or export its current key with --key-file, --header or --json",
		Example: `  fotagate keys show hall-1
  fotagate keys show hall-1 --header firmware/include/fota_provision.h`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if err := out.prepare(reg.path()); err != nil {
				return err
			}
			r, err := reg.load(false)
			if err != nil {
				return err
			}
			d, ok := r.Lookup(id)
			if !ok {
				return reg.notFound(id, registry.ErrNotFound)
			}
			headline := fmt.Sprintf("Device %s (class %s), key id %s.", d.ID, d.Class, d.PSK.Fingerprint())
			if d.Note != "" {
				headline += "\nNote: " + printable(d.Note)
			}
			return out.emit(cmd, reg, d, headline)
		},
	}
	out.addFlags(cmd.Flags())
	return cmd
}

// listedDevice is a device as `keys list --json` prints it: everything but the key.
type listedDevice struct {
	ID    string `json:"id"`
	Class string `json:"class"`
	KeyID string `json:"key_id"`
	Note  string `json:"note,omitempty"`
}

func newKeysListCmd(reg *keysRegistry) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the registered devices: ID, class, key id and note (never keys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := reg.load(false)
			if err != nil {
				return err
			}
			devices := r.List()
			w := cmd.OutOrStdout()
			if asJSON {
				list := make([]listedDevice, 0, len(devices)) // [] rather than null when empty
				for _, d := range devices {
					list = append(list, listedDevice{d.ID, d.Class, d.PSK.Fingerprint(), d.Note})
				}
				return json.NewEncoder(w).Encode(list)
			}
			if len(devices) == 0 {
				fmt.Fprintf(w, "No devices in %s. Add one with: %s\n", r.Path(),
					reg.cmdline("add", "DEVICE", "--class", "CLASS"))
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCLASS\tKEY ID\tNOTE")
			for _, d := range devices {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID, d.Class, d.PSK.Fingerprint(), printable(d.Note))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the devices as JSON (without keys)")
	return cmd
}

func newKeysRemoveCmd(reg *keysRegistry) *cobra.Command {
	return &cobra.Command{
		Use:   "remove DEVICE",
		Short: "Remove a device: the gateway refuses it after its next registry reload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			r, err := reg.load(false)
			if err != nil {
				return err
			}
			d, _ := r.Lookup(id) // for the summary only; Remove decides whether it exists
			if err := r.Remove(id); err != nil {
				return reg.notFound(id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed device %s (key id %s) from %s.\n"+
				"The gateway refuses it once it reloads the registry (SIGHUP). "+
				"Delete any key files or headers exported for it.\n", id, d.PSK.Fingerprint(), r.Path())
			return nil
		},
	}
}

// keysRegistry finds the registry the keys commands work on.
type keysRegistry struct {
	flag   string // --registry as given
	config string // --config
}

// defaultRegistryPath is where the gateway looks when it has no configuration file.
func defaultRegistryPath() string {
	p, err := config.RegistryPath("")
	if err != nil {
		panic("config defaults do not load: " + err.Error())
	}
	return p
}

func (k *keysRegistry) path() string {
	if k.flag != "" {
		return k.flag
	}
	if p, err := config.RegistryPath(k.config); err == nil {
		return p
	}
	return defaultRegistryPath()
}

// load opens the registry, creating an empty one if create is set, and turns the failures
// people meet first (no file yet, not our file) into errors that say what to do. An
// insecure registry's error already names the chmod that fixes it.
func (k *keysRegistry) load(create bool) (*registry.Registry, error) {
	path := k.path()
	var (
		r   *registry.Registry
		err error
	)
	if create {
		r, err = registry.LoadOrCreate(path, nil)
	} else {
		r, err = registry.Load(path, nil)
	}
	switch {
	case err == nil:
		return r, nil
	case !create && errors.Is(err, fs.ErrNotExist):
		return nil, &hintError{err: err, msg: fmt.Sprintf(
			"no device registry at %s: %s creates it; --registry FILE or --config FILE selects another one",
			path, k.cmdline("add", "DEVICE", "--class", "CLASS"))}
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: run this as the gateway's user (or root), or give --registry FILE", err)
	}
	return nil, err
}

// notFound explains registry.ErrNotFound for device id and passes other errors through.
func (k *keysRegistry) notFound(id string, err error) error {
	if !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	return &hintError{err: err, msg: fmt.Sprintf("no device %s in %s: %s shows the registered ones",
		id, k.path(), k.cmdline("list"))}
}

// cmdline spells a `fotagate keys` command for a hint, with --registry or --config when this
// command line had one.
func (k *keysRegistry) cmdline(sub string, args ...string) string {
	parts := []string{"fotagate", "keys", sub}
	if len(args) > 0 {
		parts = append(parts, args[0]) // the device, before any flags, as the usage lines show
		args = args[1:]
	}
	if k.flag != "" {
		parts = append(parts, "--registry", registry.ShellQuote(k.flag))
	} else if k.config != config.DefaultPath {
		parts = append(parts, "--config", registry.ShellQuote(k.config))
	}
	return strings.Join(append(parts, args...), " ")
}

// provisionOutput is what add, rotate and show export for a device. Every form holds the
// key, so each is produced only on request, and files are written mode 0600.
type provisionOutput struct {
	keyFile string
	header  string
	json    bool
}

func (o *provisionOutput) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.keyFile, "key-file", "", "write the key file for the Go device (JSON) to `FILE`, mode 0600")
	f.StringVar(&o.header, "header", "", "write the C header to `FILE` (to "+registry.HeaderName+" in it if a directory), mode 0600")
	f.BoolVar(&o.json, "json", false, "print the provisioning JSON, key included, to stdout")
}

// prepare checks the output paths before the registry changes, so that a typo in a path
// does not leave a freshly keyed device that nobody exported.
func (o *provisionOutput) prepare(registryPath string) error {
	if o.header != "" {
		if fi, err := os.Stat(o.header); err == nil && fi.IsDir() {
			o.header = filepath.Join(o.header, registry.HeaderName)
		}
	}
	for _, out := range []struct{ flag, path string }{{"--key-file", o.keyFile}, {"--header", o.header}} {
		if out.path == "" {
			continue
		}
		if fi, err := os.Stat(out.path); err == nil && fi.IsDir() {
			return fmt.Errorf("%s %s is a directory: name a file in it", out.flag, out.path)
		}
		if dir := filepath.Dir(out.path); !isDir(dir) {
			return fmt.Errorf("%s %s: directory %s does not exist: create it first", out.flag, out.path, dir)
		}
		// Writing provisioning data over the registry would lose every other device's key.
		if samePath(out.path, registryPath) || samePath(out.path, registryPath+".lock") {
			return fmt.Errorf("%s %s is the device registry: name another file", out.flag, out.path)
		}
	}
	if o.keyFile != "" && o.header != "" && samePath(o.keyFile, o.header) {
		return fmt.Errorf("--key-file and --header both name %s: give each its own file", o.keyFile)
	}
	return nil
}

// emit writes and prints what was asked for d, then says for people what happened: on
// stdout, or on stderr when stdout carries the JSON. Nothing here prints the key except the
// JSON that --json asks for.
func (o *provisionOutput) emit(cmd *cobra.Command, reg *keysRegistry, d registry.Device, headline string) error {
	var wrote []string
	if o.keyFile != "" {
		if err := registry.WriteKeyFile(o.keyFile, d); err != nil {
			return o.exportFailed(reg, d, "writing --key-file "+o.keyFile, err)
		}
		wrote = append(wrote, "Wrote key file "+o.keyFile+" (mode 0600).")
	}
	if o.header != "" {
		if err := registry.WriteSecretFile(o.header, registry.CHeader(d)); err != nil {
			return o.exportFailed(reg, d, "writing --header "+o.header, err)
		}
		wrote = append(wrote, "Wrote C header "+o.header+" (mode 0600).")
	}
	w := cmd.OutOrStdout()
	if o.json {
		if _, err := w.Write(registry.ProvisionJSON(d)); err != nil {
			return err
		}
		w = cmd.ErrOrStderr()
	}
	fmt.Fprintln(w, headline)
	for _, line := range wrote {
		fmt.Fprintln(w, line)
	}
	switch {
	case len(wrote) > 0:
		fmt.Fprintln(w, "These files hold the device's key: build them into its firmware, then delete them.")
	case o.json:
		fmt.Fprintln(w, "The JSON on stdout holds the device's key: keep it out of logs and shell history.")
	default:
		printNotPrinted(w, reg, d.ID)
	}
	return nil
}

func printNotPrinted(w io.Writer, reg *keysRegistry, id string) {
	fmt.Fprintln(w, "The key was NOT printed. Export it for the device with one of:")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintf(tw, "  %s\t(key file for the Go device)\n", reg.cmdline("show", id, "--key-file", "FILE"))
	fmt.Fprintf(tw, "  %s\t(C header for the C device library)\n", reg.cmdline("show", id, "--header", "FILE"))
	fmt.Fprintf(tw, "  %s\t(provisioning JSON on stdout, key included)\n", reg.cmdline("show", id, "--json"))
	tw.Flush()
}

// exportFailed reports a failure after the registry already holds d's new key, with the
// command that exports it again.
func (o *provisionOutput) exportFailed(reg *keysRegistry, d registry.Device, what string, err error) error {
	again := []string{d.ID}
	if o.keyFile != "" {
		again = append(again, "--key-file", registry.ShellQuote(o.keyFile))
	}
	if o.header != "" {
		again = append(again, "--header", registry.ShellQuote(o.header))
	}
	if o.json || len(again) == 1 {
		again = append(again, "--json")
	}
	return fmt.Errorf("device %s is registered with key id %s, but %s failed: %w; export its key with: %s",
		d.ID, d.PSK.Fingerprint(), what, err, reg.cmdline("show", again...))
}

// hintError is an error for people whose cause stays matchable with errors.Is without being
// repeated in the message.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// badName words a protocol.CheckDeviceID or CheckClass error for the command line: which
// argument, and what it may hold, without the wire-level "malformed message".
func badName(arg string, err error) error {
	msg := strings.TrimPrefix(err.Error(), protocol.ErrMalformed.Error()+": ")
	return &hintError{err: err, msg: arg + ": " + msg}
}

// checkNote keeps notes to one line of printable text: they are shown in terminal tables.
func checkNote(note string) error {
	if strings.IndexFunc(note, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
		return fmt.Errorf("--note %s: use one line of printable text", strconv.Quote(note))
	}
	return nil
}

// printable shows a note as is, or quoted if it holds anything a terminal would interpret
// (the registry file can be edited by other means).
func printable(s string) string {
	if checkNote(s) != nil {
		return strconv.Quote(s)
	}
	return s
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// samePath reports whether a and b name the same file: the same absolute path, or, when both
// exist, the same file through links.
func samePath(a, b string) bool {
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	if errA == nil && errB == nil && absA == absB {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
