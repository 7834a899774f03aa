package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/protocol"
	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// maxKeyFile bounds how much of a key file is read.
const maxKeyFile = 4 << 10

type options struct {
	gateway    string
	keyFile    string
	flashFile  string
	stateFile  string
	flashSize  int64
	sectorSize int
	maxPayload int
	vendorKeys []string
	json       bool
	progress   string
	timeout    time.Duration
	reboot     bool
	verbose    bool
}

// parseFlags parses args; a non-nil error is a usage error, already explained on stderr.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fotadev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gateway, "gateway", "127.0.0.1:7683", "gateway `host:port`")
	fs.StringVar(&o.keyFile, "key", "", "device key `file` (JSON from \"fotagate keys\", mode 0600); required")
	fs.StringVar(&o.flashFile, "flash", "", "staging slot `file`, created erased if missing; required")
	fs.StringVar(&o.stateFile, "state", "", "device state `file`, created if missing; required")
	fs.Int64Var(&o.flashSize, "flash-size", 1<<20, "staging slot size in `bytes` (the largest image the device takes)")
	fs.IntVar(&o.sectorSize, "sector-size", 4096, "flash erase sector in `bytes`")
	fs.IntVar(&o.maxPayload, "max-payload", devicelib.DefaultMaxPayload, fmt.Sprintf("largest chunk the device takes, %d to %d `bytes`", protocol.MinPayload, protocol.MaxPayload))
	fs.Func("vendor-key", "vendor public key `file` (\"fotagate keygen\" output); repeatable; makes signed images mandatory", func(s string) error {
		o.vendorKeys = append(o.vendorKeys, s)
		return nil
	})
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object on stdout")
	fs.StringVar(&o.progress, "progress", "auto", "progress bar on stderr: `auto` (when stderr is a terminal), always or never")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on the session after this `duration`")
	fs.BoolVar(&o.reboot, "reboot", true, "boot an installed image right away, as the device would")
	fs.BoolVar(&o.verbose, "verbose", false, "log the session to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fotadev --key device.json --flash dev.flash --state dev.state [flags]\n\n"+
			"Runs one simulated device through one update session with a fotagate gateway.\n"+
			"Exit status: 0 installed or up to date, 1 error, 2 usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"--key", o.keyFile}, {"--flash", o.flashFile}, {"--state", o.stateFile}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q: fotadev takes flags only", fs.Arg(0))
	case len(missing) > 0:
		err = fmt.Errorf("missing %s", strings.Join(missing, ", "))
	case o.progress != "auto" && o.progress != "always" && o.progress != "never":
		err = fmt.Errorf("--progress %q: want auto, always or never", o.progress)
	case o.timeout <= 0:
		err = fmt.Errorf("--timeout %v: must be positive", o.timeout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "fotadev: %v\nRun fotadev --help for the flags.\n", err)
	}
	return o, err
}

// run is fotadev without the process around it, so tests can run it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	out := &output{o: o, stdout: stdout, stderr: stderr}
	dev, closeFlash, err := o.device(stderr, out)
	if err != nil {
		return out.fail(stderr, err)
	}
	defer closeFlash()
	out.dev = dev
	// Power-on: the bootloader boots what a previous run left pending.
	if err := dev.Reboot(); errors.Is(err, protocol.ErrDigestMismatch) {
		fmt.Fprintf(stderr, "fotadev: warning: %v\n", err)
	} else if err != nil {
		return out.fail(stderr, err)
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", o.gateway)
	if err != nil {
		return out.fail(stderr, fmt.Errorf("connecting to the gateway: %w", err))
	}
	defer conn.Close()
	res, err := dev.Update(ctx, conn)
	out.res = res
	out.finishBar()
	if err != nil {
		return out.fail(stderr, err)
	}
	if res.Outcome == devicelib.Installed && o.reboot {
		if err := dev.Reboot(); err != nil {
			return out.fail(stderr, fmt.Errorf("booting the new image: %w", err))
		}
	}
	out.print()
	if res.Outcome == devicelib.Retry {
		return exitError
	}
	return exitOK
}

// device builds the Device from the files the options name.
func (o *options) device(stderr io.Writer, out *output) (*devicelib.Device, func() error, error) {
	key, err := loadKeyFile(o.keyFile)
	if err != nil {
		return nil, nil, err
	}
	var vendor []ed25519.PublicKey
	for _, path := range o.vendorKeys {
		k, err := manifest.LoadPublicKey(path)
		if err != nil {
			return nil, nil, fmt.Errorf("vendor key: %w", err)
		}
		vendor = append(vendor, k)
	}
	flash, err := devicelib.OpenFileFlash(o.flashFile, o.flashSize, o.sectorSize)
	if err != nil {
		return nil, nil, err
	}
	log := zap.NewNop()
	if o.verbose {
		enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
		log = zap.New(zapcore.NewCore(enc, zapcore.AddSync(stderr), zap.DebugLevel))
	}
	cfg := devicelib.Config{
		ID: key.ID, PSK: [protocol.KeySize]byte(key.PSK), Class: key.Class,
		MaxPayload: o.maxPayload, VendorKeys: vendor,
		Flash: flash, Store: devicelib.NewFileStore(o.stateFile), Log: log,
	}
	if o.showProgress(stderr) {
		cfg.Progress = out.progressTo(stderr)
	}
	d, err := devicelib.New(cfg)
	if err != nil {
		flash.Close()
		return nil, nil, err
	}
	return d, flash.Close, nil
}

func (o *options) showProgress(stderr io.Writer) bool {
	switch o.progress {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := stderr.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// loadKeyFile reads the device's provisioning JSON. Like ssh with a private key, it refuses
// a file that others may read: the PSK in it lets anyone pose as the device.
func loadKeyFile(path string) (registry.Device, error) {
	f, err := os.Open(path)
	if err != nil {
		return registry.Device{}, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // the open file's mode: the one of the bytes read
	if err != nil {
		return registry.Device{}, fmt.Errorf("key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return registry.Device{}, fmt.Errorf("key file %s has mode %04o, so others may read the device's key; run: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return registry.Device{}, fmt.Errorf("key file %s: %w", path, err)
	}
	d, err := registry.ParseProvisionJSON(b)
	if err != nil {
		return registry.Device{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return d, nil
}

// output renders the run's result for people or, with --json, for machines.
type output struct {
	o      *options
	stdout io.Writer
	stderr io.Writer
	dev    *devicelib.Device
	res    devicelib.Result
	bar    *progressbar.ProgressBar
}

func (out *output) progressTo(w io.Writer) func(devicelib.Progress) {
	return func(p devicelib.Progress) {
		if out.bar == nil {
			out.bar = progressbar.NewOptions64(int64(p.Image.Size),
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(fmt.Sprintf("image %d", p.Image.Seq)),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
			)
		}
		out.bar.Set64(int64(p.Received))
	}
}

func (out *output) finishBar() {
	if out.bar != nil && !out.bar.IsFinished() {
		out.bar.Exit()
		fmt.Fprintln(out.stderr)
	}
}

// report is the JSON form of a run.
type report struct {
	DeviceID    string            `json:"device_id,omitempty"`
	Outcome     devicelib.Outcome `json:"outcome"`
	GatewayID   string            `json:"gateway_id,omitempty"`
	Seq         uint32            `json:"seq,omitempty"`
	Size        uint32            `json:"size,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	ResumedFrom uint32            `json:"resumed_from"`
	Received    uint32            `json:"received"`
	RetryAfter  float64           `json:"retry_after_s,omitempty"`
	Running     uint32            `json:"running"`
	Pending     uint32            `json:"pending,omitempty"`
	BootCounter uint32            `json:"boot_counter,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	Error       string            `json:"error,omitempty"`
}

func (out *output) report(err error) report {
	r := report{Outcome: out.res.Outcome, GatewayID: out.res.GatewayID, Seq: out.res.Image.Seq,
		Size: out.res.Image.Size, ResumedFrom: out.res.ResumedFrom, Received: out.res.Received,
		RetryAfter: out.res.RetryAfter.Seconds(), BootCounter: out.res.BootCounter, Reason: out.res.Reason}
	if !out.res.Image.IsZero() {
		r.SHA256 = hex.EncodeToString(out.res.Image.Digest[:])
	}
	if out.dev != nil {
		st := out.dev.State()
		r.DeviceID, r.Running, r.Pending = out.dev.ID(), st.Running.Seq, st.Pending.Seq
	}
	if err != nil {
		r.Error = err.Error()
		if r.Reason == "" {
			r.Reason = protocol.Reason(err)
		}
	}
	return r
}

func (out *output) print() {
	r := out.report(nil)
	if out.o.json {
		out.writeJSON(r)
		return
	}
	w := out.stdout
	switch r.Outcome {
	case devicelib.Installed:
		fmt.Fprintf(w, "installed image %d (%d bytes, sha256 %s) from %s", r.Seq, r.Size, r.SHA256, r.GatewayID)
		if r.ResumedFrom > 0 {
			fmt.Fprintf(w, ", resumed at byte %d", r.ResumedFrom)
		}
		fmt.Fprintf(w, "; received %d bytes\n", r.Received)
		if r.Pending != 0 {
			fmt.Fprintf(w, "running %d; image %d boots at the next run\n", r.Running, r.Pending)
		} else {
			fmt.Fprintf(w, "now running %d\n", r.Running)
		}
	case devicelib.UpToDate:
		fmt.Fprintf(w, "up to date: running %d, %s has nothing newer\n", r.Running, r.GatewayID)
	case devicelib.Retry:
		fmt.Fprintf(w, "%s is still fetching the image; retry after %gs\n", r.GatewayID, r.RetryAfter)
	}
}

func (out *output) writeJSON(r report) {
	b, _ := json.Marshal(r) // plain fields: cannot fail
	out.stdout.Write(append(b, '\n'))
}

// fail reports err (on stderr, and as JSON on stdout with --json) and returns exitError.
func (out *output) fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "fotadev: %v\n", err)
	if out.o.json {
		out.writeJSON(out.report(err))
	}
	return exitError
}
