package c_test

// The C device against the real Go gateway over loopback TCP: gateway/server serves a random
// 1 MiB image, and build/fotadev-c-N (ports/posix, built here with the sanitizers) fetches it
// for every compiled chunk limit N. Then the same through a proxy that cuts the gateway's
// stream after a random number of bytes: the device fails with truncated, and the next run
// resumes from its durable offset and ends with the identical image.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/gateway/server"
)

var interopPayloads = []int{64, 256, 512, 1024, 4096}

// fotadevBinaries returns fotadev-c-N for every N, built with the sanitizers (testBinaries),
// so a memory error in the port or the library fails the test.
func fotadevBinaries() (map[int]string, error) {
	bins := map[int]string{}
	for _, n := range interopPayloads {
		b, err := testBinary(fmt.Sprintf("fotadev-c-%d", n))
		if err != nil {
			return nil, err
		}
		bins[n] = b
	}
	return bins, nil
}

// The server's small interfaces, as gateway/server's own tests implement them.
type devMap map[string]server.Device

func (m devMap) LookupDevice(id string) (server.Device, bool) { d, ok := m[id]; return d, ok }

type oneImage struct{ img *server.Image }

func (o oneImage) Latest(string, uint32) (*server.Image, error) { return o.img, nil }

const interopSeq = 7

// startGateway serves img to the devices in devs and returns its address.
func startGateway(t *testing.T, devs devMap, img []byte) string {
	t.Helper()
	im := &server.Image{Seq: interopSeq, Size: uint32(len(img)), Digest: sha256.Sum256(img),
		Open: func() (server.ImageReader, error) { return server.MemoryImage(img), nil }}
	s, err := server.New(server.Config{GatewayID: "gw-interop", MaxPayload: 4096}, devs, oneImage{im}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// cDevice is one fotadev-c device: its key, slot and state files.
type cDevice struct {
	bin, dir, key string
}

func newCDevice(t *testing.T, bin, id string, psk [32]byte) *cDevice {
	t.Helper()
	dir := t.TempDir()
	d := &cDevice{bin: bin, dir: dir, key: filepath.Join(dir, "device.json")}
	if err := registry.WriteKeyFile(d.key, registry.Device{ID: id, Class: testClass, PSK: registry.Key(psk)}); err != nil {
		t.Fatal(err)
	}
	return d
}

// result is fotadev-c's --json output.
type result struct {
	DeviceID    string  `json:"device_id"`
	Outcome     string  `json:"outcome"`
	Seq         uint32  `json:"seq"`
	Size        uint32  `json:"size"`
	SHA256      string  `json:"sha256"`
	ResumedFrom uint32  `json:"resumed_from"`
	Received    uint32  `json:"received"`
	Running     uint32  `json:"running"`
	Pending     uint32  `json:"pending"`
	BootCounter uint32  `json:"boot_counter"`
	Reason      string  `json:"reason"`
	FirstByte   float64 `json:"first_byte_s"`
	LastByte    float64 `json:"last_byte_s"`
}

// run runs one session against addr and returns the JSON result and the exit status.
func (d *cDevice) run(t *testing.T, addr string) (result, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, "--gateway", addr, "--key", d.key,
		"--flash", filepath.Join(d.dir, "slot"), "--state", filepath.Join(d.dir, "state"),
		"--slot-size", fmt.Sprint(1<<20), "--timeout", "20", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", d.bin, err)
	}
	var r result
	if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
		t.Fatalf("%s exited %d with output %q: %v; stderr:\n%s", d.bin, code, stdout.String(), jerr, stderr.String())
	}
	if code > 1 {
		t.Fatalf("%s exited %d; stderr:\n%s", d.bin, code, stderr.String())
	}
	return r, code
}

func (d *cDevice) slot(t *testing.T, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "slot"))
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func interopImage() []byte { return randomImage(1<<20, 2024) }

func TestInteropFotadevCInstallsFromGoGateway(t *testing.T) {
	bins, err := fotadevBinaries()
	if err != nil {
		t.Fatal(err)
	}
	img := interopImage()
	devs := devMap{}
	keys := map[int][32]byte{}
	for _, n := range interopPayloads {
		keys[n] = sha256.Sum256([]byte(fmt.Sprint("interop key ", n)))
		devs[fmt.Sprintf("c-dev-%d", n)] = server.Device{Class: testClass, PSK: keys[n]}
	}
	addr := startGateway(t, devs, img)
	for _, n := range interopPayloads {
		t.Run(fmt.Sprintf("chunk-%d", n), func(t *testing.T) {
			t.Parallel()
			d := newCDevice(t, bins[n], fmt.Sprintf("c-dev-%d", n), keys[n])
			r, code := d.run(t, addr)
			digest := sha256.Sum256(img)
			if code != 0 || r.Outcome != "installed" || r.Size != uint32(len(img)) || r.ResumedFrom != 0 ||
				r.Received != uint32(len(img)) || r.SHA256 != hex.EncodeToString(digest[:]) ||
				r.Running != interopSeq || r.BootCounter != 1 {
				t.Fatalf("exit %d, result %+v", code, r)
			}
			// The device's own timings, which the bench reports for it.
			if r.FirstByte <= 0 || r.LastByte < r.FirstByte || r.LastByte > 60 {
				t.Fatalf("first byte at %v s, last at %v s", r.FirstByte, r.LastByte)
			}
			if !bytes.Equal(d.slot(t, len(img)), img) {
				t.Fatal("the slot file does not hold the image")
			}
			// Confirmed: the next session finds nothing newer.
			if r, code := d.run(t, addr); code != 0 || r.Outcome != "up_to_date" || r.BootCounter != 2 || r.FirstByte != 0 {
				t.Fatalf("second run: exit %d, result %+v", code, r)
			}
		})
	}
}

// cutProxy forwards connections to target, but closes each after the gateway has sent
// limit() bytes toward the device.
func cutProxy(t *testing.T, target string, limit func() int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				g, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer g.Close()
				acks := make(chan struct{})
				go func() {
					io.Copy(g, c) // the device's messages, uncut
					close(acks)
				}()
				io.CopyN(c, g, limit())
				// FIN after the last byte: the device reads all of them, then the end of the
				// stream, and closes its side. (Closing here with the device's messages
				// unread would reset the connection and lose bytes in flight.)
				c.(*net.TCPConn).CloseWrite()
				<-acks
			}()
		}
	}()
	return ln.Addr().String()
}

func TestInteropFotadevCResumesAfterCuts(t *testing.T) {
	bins, err := fotadevBinaries()
	if err != nil {
		t.Fatal(err)
	}
	img := interopImage()
	devs := devMap{}
	keys := map[int][32]byte{}
	for _, n := range interopPayloads {
		keys[n] = sha256.Sum256([]byte(fmt.Sprint("resume key ", n)))
		devs[fmt.Sprintf("c-cut-%d", n)] = server.Device{Class: testClass, PSK: keys[n]}
	}
	addr := startGateway(t, devs, img)
	for _, n := range interopPayloads {
		t.Run(fmt.Sprintf("chunk-%d", n), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(uint64(n), 42))
			// Cut somewhere after the first few sectors and well before the end, twice.
			var mu sync.Mutex
			var cuts []int64
			proxy := cutProxy(t, addr, func() int64 {
				mu.Lock()
				defer mu.Unlock()
				c := 64<<10 + r.Int64N(400<<10)
				cuts = append(cuts, c)
				return c
			})
			d := newCDevice(t, bins[n], fmt.Sprintf("c-cut-%d", n), keys[n])
			var from uint32
			for i := range 2 {
				res, code := d.run(t, proxy)
				if code != 1 || res.Outcome != "failed" || res.Reason != "truncated" {
					t.Fatalf("cut run %d: exit %d, result %+v", i, code, res)
				}
				if res.ResumedFrom != from {
					t.Fatalf("cut run %d resumed from %d, want %d", i, res.ResumedFrom, from)
				}
				// The device used every whole frame it got: the stream minus the handshake,
				// 19 bytes of each frame, and at most one frame cut in half.
				mu.Lock()
				got := (cuts[i] - 200) * int64(n) / int64(n+19)
				mu.Unlock()
				if int64(res.Received) < got-int64(n) {
					t.Fatalf("cut run %d: received %d of the ~%d payload bytes sent", i, res.Received, got)
				}
				// Durable: every whole default ack interval (durable points sit at its
				// multiples, and runs start on one).
				from = (from + res.Received) &^ (testAckEvery - 1)
			}
			res, code := d.run(t, addr)
			if code != 0 || res.Outcome != "installed" || res.ResumedFrom == 0 {
				t.Fatalf("resuming run: exit %d, result %+v; want installed from an offset > 0", code, res)
			}
			if res.ResumedFrom != from || res.ResumedFrom+res.Received != uint32(len(img)) {
				t.Fatalf("resumed from %d and received %d of %d bytes", res.ResumedFrom, res.Received, len(img))
			}
			if !bytes.Equal(d.slot(t, len(img)), img) {
				t.Fatal("the slot file does not hold the image after resuming")
			}
			mu.Lock()
			t.Logf("streams cut after %d bytes; resumed at %d", cuts, res.ResumedFrom)
			mu.Unlock()
		})
	}
}
