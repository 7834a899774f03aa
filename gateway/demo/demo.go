// Package demo runs the whole product on one machine with no setup: a vendor publishes a
// signed image to an in-process HTTPS + HTTP/3 upstream, the real gateway (gateway/daemon)
// fetches, verifies and caches it, and simulated devices (devicelib) update from it
// concurrently over the device protocol: one of them has its connection cut and resumes, an
// intruder with a wrong key is turned away, and a second check-in finds everyone up to date.
// `fotagate demo` prints the run; tests assert it.
package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/daemon"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
)

// Class is the device class of the demo fleet.
const Class = "esp8266-4m"

// Options shape a run. Zero values take the defaults.
type Options struct {
	Devices   int                     // simulated devices, default 5
	ImageSize int                     // bytes, default 512 KiB
	Out       io.Writer               // the report for people; nil discards it
	Progress  func(done, total int64) // aggregate progress, called often; may be nil
	Log       *zap.Logger             // gateway logs; nil discards them
	Timeout   time.Duration           // the whole run, default 2 minutes
}

// DeviceResult is one device's part of the run.
type DeviceResult struct {
	ID          string
	Chunk       int
	Outcome     string // of the update
	Reason      string
	ResumedFrom uint32 // > 0 for the device that was cut and resumed
	CutAt       uint32 // bytes received when its first connection was cut
	Received    uint32 // image bytes over the wire in the final session
	Duration    time.Duration
	ExactImage  bool   // flash holds exactly the published image
	Running     uint32 // sequence running after the reboot
	SecondCheck string // outcome of the check-in after the update
}

// Summary is what a run did.
type Summary struct {
	UpstreamURL string
	GatewayAddr string
	Seq         uint32
	Size        int
	Digest      [32]byte
	Requests    map[string]int // upstream requests by "proto file"
	Devices     []DeviceResult
	Intruder    string // reason the wrong-key device was refused
}

// Err reports whether the run showed what it should: every device installed the exact image,
// the cut device resumed, the intruder was refused and the second check-in found nothing new.
func (s *Summary) Err() error {
	var errs []error
	for _, d := range s.Devices {
		if d.Outcome != devicelib.Installed.String() || !d.ExactImage || d.Running != s.Seq {
			errs = append(errs, fmt.Errorf("device %s: %s %s (exact image %v, running %d)", d.ID, d.Outcome, d.Reason, d.ExactImage, d.Running))
		}
		if d.SecondCheck != devicelib.UpToDate.String() {
			errs = append(errs, fmt.Errorf("device %s: second check-in %s", d.ID, d.SecondCheck))
		}
		if d.CutAt > 0 && d.ResumedFrom == 0 {
			errs = append(errs, fmt.Errorf("device %s: cut at %d but did not resume", d.ID, d.CutAt))
		}
	}
	if s.Intruder != "auth_failed" {
		errs = append(errs, fmt.Errorf("intruder: %q, want auth_failed", s.Intruder))
	}
	return errors.Join(errs...)
}

var deviceNames = []string{"boiler-1", "lobby-sensor", "pump-3", "hvac-4", "door-5", "meter-6", "light-7", "vent-8"}
var chunks = []int{256, 1024, 512, 2048, 4096, 64, 128, 1024}

// Run performs the demo in a temporary directory it removes afterwards.
func Run(ctx context.Context, opt Options) (*Summary, error) {
	if opt.Devices <= 0 {
		opt.Devices = 5
	}
	if opt.ImageSize <= 0 {
		opt.ImageSize = 512 << 10
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "fotagate-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := opt.Out

	// 1. The vendor signs a release and puts it on its HTTPS host.
	pub, priv, err := manifest.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	vendorPub := filepath.Join(dir, "vendor.pub")
	if err := manifest.SavePublicKey(vendorPub, pub); err != nil {
		return nil, err
	}
	image := make([]byte, opt.ImageSize)
	rand.Read(image)
	imgPath := filepath.Join(dir, "firmware-2.0.0.bin")
	if err := os.WriteFile(imgPath, image, 0o644); err != nil {
		return nil, err
	}
	site := filepath.Join(dir, "site")
	rel, err := manifest.PublishDir(site, imgPath, manifest.PublishOptions{
		Class: Class, Version: "2.0.0", Seq: 2, Expires: time.Now().Add(24 * time.Hour)}, priv)
	if err != nil {
		return nil, err
	}
	up, err := StartUpstream(site)
	if err != nil {
		return nil, err
	}
	defer up.Close()
	caFile := filepath.Join(dir, "vendor-ca.pem")
	if err := up.CA.WriteCertPEM(caFile); err != nil {
		return nil, err
	}
	s := &Summary{UpstreamURL: up.URL, Seq: rel.Manifest.Seq, Size: opt.ImageSize, Digest: rel.Manifest.SHA256}
	fmt.Fprintf(out, "vendor   published %s %s (seq %d, %d bytes, sha256 %x..., Ed25519-signed)\n",
		Class, rel.Manifest.Version, s.Seq, s.Size, s.Digest[:6])
	fmt.Fprintf(out, "upstream %s: HTTPS (HTTP/2) and HTTP/3 on one port, certificate from a fresh local CA\n", up.URL)

	// 2. The building's gateway, with a registry of provisioned devices.
	cfg := config.Default()
	cfg.GatewayID = "gw-demo"
	cfg.StateDir = filepath.Join(dir, "gateway")
	cfg.Registry = filepath.Join(cfg.StateDir, "devices.json")
	cfg.Cache.Dir = filepath.Join(cfg.StateDir, "cache")
	cfg.Devices.Listen = "127.0.0.1:0"
	cfg.Devices.FailBurst = 100
	cfg.Admin.Listen = ""
	cfg.Upstream.CABundle = caFile
	cfg.Upstream.VendorKeys = []string{vendorPub}
	cfg.Upstream.Transport = "auto"
	cfg.Classes = []config.Class{{Name: Class, Manifest: up.URL + "/" + Class + "/" + manifest.DocName}}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg, err := registry.LoadOrCreate(cfg.Registry, opt.Log)
	if err != nil {
		return nil, err
	}
	var devs []registry.Device
	for i := range opt.Devices {
		name := deviceNames[i%len(deviceNames)]
		if i >= len(deviceNames) {
			name = fmt.Sprintf("%s-%d", name, i)
		}
		d, err := reg.Add(name, Class, rand.Reader)
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	g, err := daemon.New(&cfg, opt.Log, daemon.Options{})
	if err != nil {
		return nil, err
	}
	s.GatewayAddr = g.DeviceAddr().String()
	// The first poll before devices come: they would otherwise be told to retry later.
	if err := g.Catalog.Poll(ctx); err != nil {
		return nil, fmt.Errorf("gateway could not take the release: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	gwDone := make(chan error, 1)
	go func() { gwDone <- g.Run(runCtx, 5*time.Second) }()
	defer func() { stop(); <-gwDone }()
	s.Requests = up.Requests()
	fmt.Fprintf(out, "gateway  %s fetched the release (%s), verified both signatures and the image, cached it\n",
		s.GatewayAddr, describeRequests(s.Requests))

	// 3. The devices update concurrently; the second one is cut mid-way and resumes.
	fmt.Fprintf(out, "devices  %d devices update at once over the fotagate protocol (one is cut at 40%% and resumes)\n", len(devs))
	var done atomic.Int64
	total := int64(len(devs)) * int64(opt.ImageSize)
	s.Devices = make([]DeviceResult, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cut := uint32(0)
			if i == 1 {
				cut = uint32(opt.ImageSize) * 2 / 5
			}
			s.Devices[i] = runDevice(ctx, s.GatewayAddr, d, chunks[i%len(chunks)], pub, image, cut, &done, total, opt.Progress)
		}()
	}
	wg.Wait()

	// 4. An intruder claims a registered ID without its key.
	var wrong [32]byte
	intruder, err := newSimDevice(devs[0].ID, wrong, 512, pub, int64(opt.ImageSize), nil)
	if err != nil {
		return nil, err
	}
	if res, err := updateOnce(ctx, s.GatewayAddr, intruder); err != nil || res.Outcome != devicelib.Installed {
		s.Intruder = res.Reason
	}
	report(out, s)
	return s, s.Err()
}

func describeRequests(r map[string]int) string {
	var parts []string
	for k, n := range r {
		proto, file, _ := strings.Cut(k, " ")
		switch {
		case strings.HasSuffix(file, ".sig"):
			file = "signature"
		case strings.HasSuffix(file, ".json"):
			file = "manifest"
		case strings.HasSuffix(file, ".bin"):
			file = "image"
		}
		parts = append(parts, fmt.Sprintf("%s over %s x%d", file, proto, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

type simDevice struct {
	*devicelib.Device
	flash *devicelib.MemFlash
}

func newSimDevice(id string, psk [32]byte, chunk int, vendor ed25519.PublicKey, size int64, progress func(devicelib.Progress)) (*simDevice, error) {
	flash, err := devicelib.NewMemFlash((size+4095)/4096*4096+4096, 4096)
	if err != nil {
		return nil, err
	}
	d, err := devicelib.New(devicelib.Config{ID: id, PSK: psk, Class: Class, MaxPayload: chunk,
		VendorKeys: []ed25519.PublicKey{vendor}, Flash: flash, Store: &devicelib.MemStore{}, Progress: progress})
	if err != nil {
		return nil, err
	}
	return &simDevice{Device: d, flash: flash}, nil
}

// cutConn closes the connection once limit bytes have been read through it.
type cutConn struct {
	net.Conn
	left int64
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.Conn.Close()
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

func updateOnce(ctx context.Context, addr string, d *simDevice, wrap ...func(net.Conn) net.Conn) (devicelib.Result, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return devicelib.Result{}, err
	}
	defer c.Close()
	var conn net.Conn = c
	for _, w := range wrap {
		conn = w(conn)
	}
	return d.Update(ctx, conn)
}

func runDevice(ctx context.Context, addr string, reg registry.Device, chunk int, vendor ed25519.PublicKey, image []byte,
	cut uint32, done *atomic.Int64, total int64, progress func(done, total int64)) DeviceResult {
	r := DeviceResult{ID: reg.ID, Chunk: chunk}
	var last uint32
	onProgress := func(p devicelib.Progress) {
		if p.Received > last {
			done.Add(int64(p.Received - last))
			last = p.Received
			if progress != nil {
				progress(done.Load(), total)
			}
		} else if p.Received < last {
			last = p.Received
		}
	}
	d, err := newSimDevice(reg.ID, reg.PSK, chunk, vendor, int64(len(image)), onProgress)
	if err != nil {
		r.Outcome, r.Reason = "failed", err.Error()
		return r
	}
	start := time.Now()
	var res devicelib.Result
	if cut > 0 {
		// The first connection dies after `cut` bytes of wire; the device keeps what is durable.
		res, err = updateOnce(ctx, addr, d, func(c net.Conn) net.Conn { return &cutConn{Conn: c, left: int64(cut)} })
		if err == nil && res.Outcome == devicelib.Installed {
			r.Outcome, r.Reason = "failed", "the cut did not happen"
			return r
		}
		r.CutAt = last
	}
	for attempt := 0; attempt < 5; attempt++ {
		if res, err = updateOnce(ctx, addr, d); err == nil || res.Outcome == devicelib.Installed {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.Duration = time.Since(start)
	r.Outcome, r.Reason, r.ResumedFrom, r.Received = res.Outcome.String(), res.Reason, res.ResumedFrom, res.Received
	if err != nil && r.Reason == "" {
		r.Reason = err.Error()
	}
	if res.Outcome != devicelib.Installed {
		return r
	}
	if err := d.Reboot(); err != nil {
		r.Reason = "reboot: " + err.Error()
		return r
	}
	r.Running = d.Running()
	slot := make([]byte, len(image))
	if err := d.flash.Read(0, slot); err == nil {
		r.ExactImage = sha256.Sum256(slot) == sha256.Sum256(image)
	}
	again, err := updateOnce(ctx, addr, d)
	r.SecondCheck = again.Outcome.String()
	if err != nil {
		r.SecondCheck += " (" + err.Error() + ")"
	}
	return r
}

func report(out io.Writer, s *Summary) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCHUNK\tRESULT\tRESUMED FROM\tBYTES THIS SESSION\tTIME\tEXACT IMAGE\tRUNNING\tCHECK-IN AFTER")
	for _, d := range s.Devices {
		result := d.Outcome
		if d.Reason != "" && d.Outcome != devicelib.Installed.String() {
			result += ": " + d.Reason
		}
		from := "-"
		if d.ResumedFrom > 0 {
			from = fmt.Sprintf("%d (cut at %d)", d.ResumedFrom, d.CutAt)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%v\tseq %d\t%s\n", d.ID, d.Chunk, result, from, d.Received,
			d.Duration.Round(time.Millisecond), d.ExactImage, d.Running, d.SecondCheck)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nintruder claiming %s with a wrong key: refused (%s)\n", s.Devices[0].ID, s.Intruder)
	if err := s.Err(); err != nil {
		fmt.Fprintf(out, "demo FAILED:\n%v\n", err)
		return
	}
	fmt.Fprintf(out, "demo ok: %d devices run seq %d with the exact signed image; nothing unverified was stored or served\n", len(s.Devices), s.Seq)
}
