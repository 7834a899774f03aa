package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/fotagate/fotagate/protocol"
)

type devMap map[string]Device

func (m devMap) LookupDevice(id string) (Device, bool) { d, ok := m[id]; return d, ok }

type oneImage struct{ img *Image }

func (o oneImage) Latest(string, uint32) (*Image, error) { return o.img, nil }

type events struct {
	mu sync.Mutex
	ev []Event
}

func (e *events) Record(ev Event) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *events) count(kind EventKind, reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if ev.Kind == kind && (reason == "" || ev.Reason == reason) {
			n++
		}
	}
	return n
}

func psk(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint("key", i))) }

func newImage(data []byte, seq uint32) *Image {
	return &Image{Seq: seq, Size: uint32(len(data)), Digest: sha256.Sum256(data),
		Open: func() (ImageReader, error) { return MemoryImage(data), nil }}
}

func start(t *testing.T, cfg Config, devs devMap, img *Image) (*Server, string, *events) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, ev := serveOn(t, cfg, devs, img, ln)
	return s, ln.Addr().String(), ev
}

// serveOn is start on a listener of the test's making.
func serveOn(t *testing.T, cfg Config, devs devMap, img *Image, ln net.Listener) (*Server, *events) {
	t.Helper()
	ev := &events{}
	s, err := New(cfg, devs, oneImage{img}, ev, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, ev
}

// deviceSession shakes hands over c as device id of class esp8266-4m running running, its
// nonces drawn from a generator seeded with seed.
func deviceSession(c net.Conn, id string, key [32]byte, running uint32, maxPayload int, seed byte) (*protocol.DeviceConn, *protocol.Offer, error) {
	dc, err := protocol.NewDeviceConn(c, &protocol.DeviceConfig{DeviceID: id, PSK: key, Class: "esp8266-4m",
		Running: running, MaxPayload: maxPayload, BootCounter: 1, Rand: rand.NewChaCha8([32]byte{seed})})
	if err != nil {
		return nil, nil, err
	}
	offer, err := dc.Handshake(nil)
	return dc, offer, err
}

// fetch runs a device against addr and returns the image it received.
func fetch(addr, id string, key [32]byte, maxPayload int, running uint32) ([]byte, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	dc, offer, err := deviceSession(c, id, key, running, maxPayload, byte(len(id)))
	if err != nil || offer.Status != protocol.StatusOffer {
		return nil, err
	}
	img := make([]byte, offer.Manifest.Size)
	for {
		p, off, final, err := dc.Next()
		if err != nil {
			return nil, err
		}
		copy(img[off:], p)
		if final {
			if sha256.Sum256(img) != offer.Manifest.Digest {
				return nil, protocol.ErrDigestMismatch
			}
			return img, dc.Report(protocol.CodeOK, offer.Manifest.Size)
		}
	}
}

func TestManyDevicesGetTheExactImageWhileBadOnesAreTurnedAway(t *testing.T) {
	data := make([]byte, 300<<10)
	rand.NewChaCha8([32]byte{7}).Read(data)
	devs := devMap{}
	for i := range 8 {
		devs[fmt.Sprint("dev-", i)] = Device{Class: "esp8266-4m", PSK: psk(i)}
	}
	_, addr, ev := start(t, Config{GatewayID: "gw-test", HandshakeTimeout: 2 * time.Second, FailBurst: 1000}, devs, newImage(data, 5))

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	// Bad peers first and throughout: garbage, wrong key, and a stalled handshake.
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.Write(bytes.Repeat([]byte{0x01, 0xff}, 100))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(make([]byte, 16))
		}()
		go func() {
			defer wg.Done()
			if _, err := fetch(addr, fmt.Sprint("dev-", i), psk(99), 512, 1); !errors.Is(err, protocol.ErrAuthFailed) {
				errs <- fmt.Errorf("wrong key: %v", err)
			}
		}()
	}
	for i, chunk := range []int{64, 256, 512, 1024, 4096, 4096, 1024, 256} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := fetch(addr, fmt.Sprint("dev-", i), psk(i), chunk, 1)
			if err != nil || !bytes.Equal(got, data) {
				errs <- fmt.Errorf("device %d chunk %d: %v", i, chunk, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The server records a Report just after the device, which has already returned, sent it.
	for deadline := time.Now().Add(10 * time.Second); ev.count(EventReport, "ok") < 8 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := ev.count(EventReport, "ok"); n != 8 {
		t.Errorf("%d ok reports, want 8", n)
	}
	if n := ev.count(EventHandshakeFailed, "auth_failed"); n != 4 {
		t.Errorf("%d auth failures recorded, want 4", n)
	}
	// The stalled peer is cut by the handshake timeout.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stalled.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("stalled handshake not cut by the gateway: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUpToDateDeviceGetsNoData(t *testing.T) {
	data := []byte("firmware")
	_, addr, ev := start(t, Config{}, devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}, newImage(data, 5))
	got, err := fetch(addr, "d", psk(1), 256, 5)
	if err != nil || got != nil {
		t.Fatalf("up to date: %v %v", got, err)
	}
	if _, err := fetch(addr, "d", psk(1), 256, 9); !errors.Is(err, protocol.ErrRollback) && err != nil {
		t.Fatalf("newer device: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ev.count(EventUpToDate, "") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ev.count(EventUpToDate, ""); n != 2 {
		t.Fatalf("%d up-to-date events, want 2", n)
	}
}

func TestRepeatedFailuresFromOneSourceAreRateLimited(t *testing.T) {
	_, addr, ev := start(t, Config{FailRate: 0.001, FailBurst: 3}, devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}, newImage([]byte("x"), 2))
	var last error
	for range 6 {
		_, last = fetch(addr, "d", psk(2), 256, 1)
	}
	if !errors.Is(last, protocol.ErrBusy) {
		t.Fatalf("sixth failure from one source: %v, want busy", last)
	}
	// Even the right key is refused while the source is over its budget.
	if _, err := fetch(addr, "d", psk(1), 256, 1); !errors.Is(err, protocol.ErrBusy) {
		t.Fatalf("good key from a limited source: %v", err)
	}
	if ev.count(EventHandshakeFailed, "rate_limited") < 2 {
		t.Fatal("rate limiting not recorded")
	}
}

func TestShutdownLetsRunningTransfersFinish(t *testing.T) {
	data := make([]byte, 1<<20)
	devs := devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}
	s, addr, ev := start(t, Config{}, devs, newImage(data, 2))
	done := make(chan error, 1)
	go func() { _, err := fetch(addr, "d", psk(1), 64, 1); done <- err }()
	for deadline := time.Now().Add(10 * time.Second); ev.count(EventAccepted, "") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("transfer never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("transfer cut by a graceful shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

type failingCatalog struct{}

func (failingCatalog) Latest(string, uint32) (*Image, error) {
	return nil, errors.New("device class not configured")
}

func TestCatalogFailureIsReportedAsUnavailable(t *testing.T) {
	ev := &events{}
	s, err := New(Config{}, devMap{"d": {Class: "esp8266-4m", PSK: psk(1)}}, failingCatalog{}, ev, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	if _, err := fetch(ln.Addr().String(), "d", psk(1), 256, 1); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("device got %v, want unavailable", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ev.count(EventHandshakeFailed, "unavailable") == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no unavailable event recorded: %+v", ev.ev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
