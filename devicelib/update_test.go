package devicelib_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/devicelib/internal/testgw"
	"github.com/fotagate/fotagate/protocol"
)

func TestFreshUpdateInstallsExactImageAtEveryChunkSize(t *testing.T) {
	img := randomImage(100<<10+3, 1) // an odd size: the last word is padded
	m := testgw.Image(img, testClass, 2, nil)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, m)
	for _, chunk := range []int{64, 256, 1024, 4096} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			s := newSim(t, chunk)
			d := s.device(t)
			res, gs, err := update(t, gw, d)
			if err != nil {
				t.Fatalf("update: %v (gateway: %v)", err, gs.Err)
			}
			if res.Outcome != devicelib.Installed || res.Image.Seq != 2 || res.Image.Digest != m.Digest || res.ResumedFrom != 0 || res.Received != uint32(len(img)) {
				t.Fatalf("result %+v", res)
			}
			if gs.Err != nil || gs.Report == nil || gs.Report.Code != protocol.CodeOK || gs.Report.Offset != uint32(len(img)) {
				t.Fatalf("gateway saw err %v, report %+v", gs.Err, gs.Report)
			}
			for i, a := range gs.Acks {
				if a != uint32((i+1)*sectorSize) {
					t.Fatalf("ack %d is %d, want a durable offset every sector: %v", i, a, gs.Acks)
				}
			}
			checkSlot(t, s, img)
			var pad [1]byte
			s.flash.Read(int64(len(img)), pad[:])
			if pad[0] != devicelib.Erased {
				t.Fatalf("padding after the image is %#x, want erased", pad[0])
			}
			// Verified and pending, but the anti-rollback floor waits for the boot.
			st := d.State()
			if d.Running() != 0 || st.Pending != res.Image || !st.Resume.IsZero() {
				t.Fatalf("before reboot: running %d, state %+v", d.Running(), st)
			}
			if err := d.Reboot(); err != nil {
				t.Fatal(err)
			}
			if d.Running() != 2 || d.ImageDigest() != m.Digest || !d.State().Pending.IsZero() {
				t.Fatalf("after reboot: running %d, state %+v", d.Running(), d.State())
			}
			// And the next session finds nothing newer.
			if res, _, err := update(t, gw, d); err != nil || res.Outcome != devicelib.UpToDate {
				t.Fatalf("second session: %v, %+v", err, res)
			}
		})
	}
}

func TestCutDownloadResumesAtDurableOffsetToIdenticalImage(t *testing.T) {
	img := randomImage(96<<10+1, 2)
	m := testgw.Image(img, testClass, 7, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, chunk := range []int{256, 1024, 4096} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			gw := testgw.Start(t, protocol.MaxPayload, testKeys())
			gw.Serve(img, m)
			const cuts = 3
			gw.SetCut(func(n int) int64 {
				if n > cuts {
					return 0
				}
				// Enough for more than one sector each time, at a random point.
				return 2*(sectorSize+protocol.DataOverhead*sectorSize/64) + rng.Int64N(int64(len(img))/5)
			})
			s := newSim(t, chunk)
			resumedAbove0 := 0
			for attempt := 1; ; attempt++ {
				if attempt > cuts+1 {
					t.Fatalf("not installed after %d sessions", cuts+1)
				}
				d := s.device(t) // each session after a "reboot"
				durable := d.State().Resume.Durable
				res, gs, err := update(t, gw, d)
				if gs.Accept == nil || gs.Accept.Offset != durable {
					t.Fatalf("attempt %d: gateway's Accept %+v, store's durable offset %d", attempt, gs.Accept, durable)
				}
				if res.ResumedFrom != durable {
					t.Fatalf("attempt %d: resumed from %d, durable %d", attempt, res.ResumedFrom, durable)
				}
				if durable > 0 {
					resumedAbove0++
				}
				if attempt <= cuts {
					if err == nil || !errors.Is(err, protocol.ErrTruncated) && !isNetError(err) {
						t.Fatalf("attempt %d: want a cut, got %v", attempt, err)
					}
					if st := s.state(t); st.Resume.Durable <= durable || st.Resume.Digest != m.Digest || !st.Pending.IsZero() {
						t.Fatalf("attempt %d: durable offset %d -> %+v", attempt, durable, st)
					}
					continue
				}
				if err != nil || res.Outcome != devicelib.Installed {
					t.Fatalf("attempt %d: %v %+v", attempt, err, res)
				}
				if res.Received != uint32(len(img))-durable {
					t.Fatalf("received %d bytes after resuming at %d", res.Received, durable)
				}
				break
			}
			if resumedAbove0 != cuts {
				t.Fatalf("%d of %d sessions resumed above 0", resumedAbove0, cuts)
			}
			checkSlot(t, s, img)
		})
	}
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// cutOnce runs one session that the gateway cuts after limit bytes and returns the durable
// offset it left.
func cutOnce(t *testing.T, gw *testgw.Gateway, s *sim, limit int64) uint32 {
	t.Helper()
	gw.SetCut(func(int) int64 { return limit })
	defer gw.SetCut(nil)
	if _, _, err := update(t, gw, s.device(t)); err == nil {
		t.Fatal("cut session succeeded")
	}
	d := s.state(t).Resume.Durable
	if d == 0 {
		t.Fatal("cut session left nothing durable")
	}
	return d
}

func TestBitRotBelowDurableOffsetIsCaughtByFinalVerification(t *testing.T) {
	img := randomImage(64<<10, 5)
	m := testgw.Image(img, testClass, 3, nil)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, m)
	s := newSim(t, 1024)
	durable := cutOnce(t, gw, s, 30<<10)
	if err := s.flash.Corrupt(int64(durable)/2, 0x10); err != nil {
		t.Fatal(err)
	}

	res, gs, err := update(t, gw, s.device(t))
	if !errors.Is(err, protocol.ErrDigestMismatch) || res.Outcome != devicelib.Failed || res.Reason != "digest_mismatch" {
		t.Fatalf("want a digest mismatch, got %v, %+v", err, res)
	}
	if gs.Accept.Offset != durable || gs.Report == nil || gs.Report.Code != protocol.CodeDigestMismatch {
		t.Fatalf("gateway: accept %+v, report %+v", gs.Accept, gs.Report)
	}
	if st := s.state(t); !st.Pending.IsZero() || !st.Resume.IsZero() {
		t.Fatalf("a bad image left state %+v", st)
	}

	res, gs, err = update(t, gw, s.device(t))
	if err != nil || res.Outcome != devicelib.Installed || gs.Accept.Offset != 0 {
		t.Fatalf("after the mismatch: %v, %+v, accept %+v", err, res, gs.Accept)
	}
	checkSlot(t, s, img)
}

func TestRebootRefusesStagedImageThatChangedAfterVerification(t *testing.T) {
	img := randomImage(20<<10, 6)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 4, nil))
	s := newSim(t, 512)
	d := s.device(t)
	if res, _, err := update(t, gw, d); err != nil || res.Outcome != devicelib.Installed {
		t.Fatalf("%v %+v", err, res)
	}
	s.flash.Corrupt(100, 1)
	if err := d.Reboot(); !errors.Is(err, protocol.ErrDigestMismatch) {
		t.Fatalf("reboot into a changed slot: %v", err)
	}
	if d.Running() != 0 || !d.State().Pending.IsZero() {
		t.Fatalf("running %d, state %+v", d.Running(), d.State())
	}
}

func TestOfferOfAnotherImageDiscardsResumeRecord(t *testing.T) {
	imgA, imgB := randomImage(60<<10, 7), randomImage(50<<10+2, 8)
	mA, mB := testgw.Image(imgA, testClass, 2, nil), testgw.Image(imgB, testClass, 3, nil)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(imgA, mA)
	s := newSim(t, 1024)
	cutOnce(t, gw, s, 30<<10)

	gw.Serve(imgB, mB)
	durableB := cutOnce(t, gw, s, 20<<10)
	st := s.state(t)
	if st.Resume.Digest != mB.Digest || st.Resume.Seq != 3 || st.Resume.Durable != durableB {
		t.Fatalf("resume record %+v does not name image B", st.Resume)
	}
	res, gs, err := update(t, gw, s.device(t))
	if err != nil || res.Outcome != devicelib.Installed || res.Image.Digest != mB.Digest || gs.Accept.Offset != durableB {
		t.Fatalf("%v %+v accept %+v", err, res, gs.Accept)
	}
	checkSlot(t, s, imgB)

	// And straight from a resume record of A to B: B starts at 0.
	s = newSim(t, 1024)
	gw.Serve(imgA, mA)
	cutOnce(t, gw, s, 30<<10)
	gw.Serve(imgB, mB)
	res, gs, err = update(t, gw, s.device(t))
	if err != nil || res.Outcome != devicelib.Installed || gs.Accept.Offset != 0 || res.ResumedFrom != 0 {
		t.Fatalf("%v %+v accept %+v", err, res, gs.Accept)
	}
	checkSlot(t, s, imgB)
}

// An offer whose digest begins as the resume record's (the 8 bytes a Hello names it by) but
// is another image: the gateway streams from the resume offset, which the slot does not hold
// for that image. The device declines and forgets its record, so the next session starts
// afresh instead of declining forever.
func TestOfferSharingTheResumeIDButNotTheDigestIsDeclinedAndForgotten(t *testing.T) {
	imgA := randomImage(60<<10, 11)
	mA := testgw.Image(imgA, testClass, 2, nil)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(imgA, mA)
	s := newSim(t, 1024)
	durable := cutOnce(t, gw, s, 30<<10)
	if durable == 0 {
		t.Fatal("nothing durable: the test needs a resume point")
	}
	twin := mA
	twin.Seq = 3
	twin.Digest[protocol.DigestSize-1] ^= 1
	gw.Serve(imgA, twin)
	res, gs, err := update(t, gw, s.device(t))
	if !errors.Is(err, protocol.ErrStaleResume) || res.Outcome != devicelib.Refused || gs.Accept == nil || gs.Accept.Code != protocol.CodeDeclined {
		t.Fatalf("%v %+v accept %+v; want declined for a stale resume point", err, res, gs.Accept)
	}
	if st := s.state(t); !st.Resume.IsZero() || !st.Pending.IsZero() {
		t.Fatalf("resume record %+v, pending %+v survive the refusal", st.Resume, st.Pending)
	}
	imgB := randomImage(50<<10, 12)
	gw.Serve(imgB, testgw.Image(imgB, testClass, 3, nil))
	res, gs, err = update(t, gw, s.device(t))
	if err != nil || res.Outcome != devicelib.Installed || gs.Accept.Offset != 0 {
		t.Fatalf("%v %+v accept %+v", err, res, gs.Accept)
	}
	checkSlot(t, s, imgB)
}

func TestResumeInsideSectorRestartsAtSectorStartWhenRestIsWritten(t *testing.T) {
	img := randomImage(40<<10, 9)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 256)
	s.cfg.AckEvery = 1024
	// Offer (< 200 bytes) and 22 frames of 256+19 bytes: 5632 bytes arrive, 5120 are durable,
	// and [5120, 5632) are in flash but not recorded.
	durable := cutOnce(t, gw, s, 200+22*(256+protocol.DataOverhead))
	if durable%sectorSize == 0 {
		t.Fatalf("durable offset %d is on a sector boundary; the test needs one inside", durable)
	}
	past := make([]byte, 512)
	s.flash.Read(int64(durable), past)
	if bytes.Count(past, []byte{devicelib.Erased}) == len(past) {
		t.Fatalf("nothing was written past the durable offset %d; the test needs it", durable)
	}
	res, gs, err := update(t, gw, s.device(t))
	want := durable - durable%sectorSize
	if err != nil || res.Outcome != devicelib.Installed || gs.Accept.Offset != want {
		t.Fatalf("%v %+v accept %+v, want resume at %d", err, res, gs.Accept, want)
	}
	checkSlot(t, s, img)
}

func TestResumeInsideSectorKeepsDurableOffsetWhenRestIsErased(t *testing.T) {
	img := randomImage(40<<10, 10)
	m := testgw.Image(img, testClass, 2, nil)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, m)
	s := newSim(t, 256)
	s.cfg.AckEvery = 1024
	// A device that stopped exactly at a commit inside sector 1.
	const durable = 5120
	for _, sec := range []int{0, 1} {
		s.flash.Erase(sec)
	}
	if err := s.flash.Write(0, img[:durable]); err != nil {
		t.Fatal(err)
	}
	st := devicelib.State{BootCounter: 4, Class: testClass,
		Resume: devicelib.Resume{Image: devicelib.Image{Seq: 2, Size: m.Size, Digest: m.Digest}, Durable: durable}}
	if err := s.store.Save(st); err != nil {
		t.Fatal(err)
	}
	res, gs, err := update(t, gw, s.device(t))
	if err != nil || res.Outcome != devicelib.Installed || gs.Accept.Offset != durable || res.BootCounter != 5 {
		t.Fatalf("%v %+v accept %+v", err, res, gs.Accept)
	}
	checkSlot(t, s, img)
}

func TestPendingImageOfferedAgainIsVerifiedAndReportedWithoutData(t *testing.T) {
	img := randomImage(30<<10, 11)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 1024)
	d := s.device(t)
	if res, _, err := update(t, gw, d); err != nil || res.Outcome != devicelib.Installed {
		t.Fatalf("%v %+v", err, res)
	}
	before := s.flash.Stats()
	// Not rebooted yet: the gateway still sees the old running sequence and offers again.
	res, gs, err := update(t, gw, d)
	if err != nil || res.Outcome != devicelib.Installed || res.Received != 0 || gs.Accept.Offset != uint32(len(img)) || gs.Report.Code != protocol.CodeOK {
		t.Fatalf("%v %+v accept %+v", err, res, gs.Accept)
	}
	if after := s.flash.Stats(); after.Writes != before.Writes || after.Erases != before.Erases {
		t.Fatalf("a staged image was written again: %+v -> %+v", before, after)
	}
	if d.State().Pending != res.Image {
		t.Fatalf("state %+v", d.State())
	}
}

func TestUpToDateAndRetryWriteNothing(t *testing.T) {
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	for _, tc := range []struct {
		offer   protocol.Offer
		outcome devicelib.Outcome
		retry   time.Duration
	}{
		{protocol.Offer{Status: protocol.StatusUpToDate}, devicelib.UpToDate, 0},
		{protocol.Offer{Status: protocol.StatusRetry, RetryAfter: 30}, devicelib.Retry, 30 * time.Second},
	} {
		t.Run(tc.outcome.String(), func(t *testing.T) {
			gw.SetOffer(func(*protocol.Hello) protocol.Offer { return tc.offer })
			s := newSim(t, 1024)
			res, gs, err := update(t, gw, s.device(t))
			if err != nil || res.Outcome != tc.outcome || res.RetryAfter != tc.retry || res.GatewayID != "gw-test" {
				t.Fatalf("%v %+v", err, res)
			}
			if gs.Err != nil || gs.Accept.Code != protocol.CodeDeclined {
				t.Fatalf("gateway: %v, accept %+v", gs.Err, gs.Accept)
			}
			if st := s.flash.Stats(); st.Writes != 0 || st.Erases != 0 {
				t.Fatalf("flash touched: %+v", st)
			}
			if st := s.state(t); st.BootCounter != 1 || !st.Resume.IsZero() || !st.Pending.IsZero() {
				t.Fatalf("state %+v", st)
			}
		})
	}
}

func TestRefusedOffersChangeNothingButTheBootCounter(t *testing.T) {
	img := randomImage(10<<10, 12)
	vendorPub, vendorKey, _ := ed25519.GenerateKey(newSeeded(1))
	_, otherKey, _ := ed25519.GenerateKey(newSeeded(2))
	running := devicelib.Image{Seq: 5, Size: 1000, Digest: sha256.Sum256([]byte("old"))}
	for _, tc := range []struct {
		name   string
		m      protocol.Manifest
		vendor bool
		want   error
	}{
		{"rollback", testgw.Image(img, testClass, 4, nil), false, protocol.ErrRollback},
		{"same_sequence", testgw.Image(img, testClass, 5, nil), false, protocol.ErrDeclined},
		{"wrong_class", testgw.Image(img, "esp32-b", 6, nil), false, protocol.ErrWrongClass},
		{"too_large", protocol.Manifest{Seq: 6, Size: slotSize + 1, Class: testClass}, false, protocol.ErrTooLarge},
		{"unsigned", testgw.Image(img, testClass, 6, nil), true, protocol.ErrBadSignature},
		{"signed_by_another_key", testgw.Image(img, testClass, 6, otherKey), true, protocol.ErrBadSignature},
		{"signature_for_another_sequence", func() protocol.Manifest {
			m := testgw.Image(img, testClass, 6, vendorKey)
			m.Seq = 7
			return m
		}(), true, protocol.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := testgw.Start(t, protocol.MaxPayload, testKeys())
			gw.Serve(img, tc.m)
			gw.SetOffer(func(*protocol.Hello) protocol.Offer {
				return protocol.Offer{Status: protocol.StatusOffer, Manifest: &tc.m}
			})
			s := newSim(t, 1024)
			if tc.vendor {
				s.cfg.VendorKeys = []ed25519.PublicKey{vendorPub}
			}
			if err := s.store.Save(devicelib.State{BootCounter: 9, Class: testClass, Running: running}); err != nil {
				t.Fatal(err)
			}
			res, gs, err := update(t, gw, s.device(t))
			if !errors.Is(err, tc.want) || res.Outcome != devicelib.Refused || res.Reason != protocol.Reason(tc.want) {
				t.Fatalf("got %v, %+v; want %v", err, res, tc.want)
			}
			if gs.Accept == nil || gs.Accept.Code != protocol.CodeFor(tc.want) {
				t.Fatalf("gateway saw accept %+v", gs.Accept)
			}
			if st := s.flash.Stats(); st.Writes != 0 || st.Erases != 0 {
				t.Fatalf("flash touched: %+v", st)
			}
			want := devicelib.State{BootCounter: 10, Class: testClass, Running: running}
			if st := s.state(t); st != want {
				t.Fatalf("state %+v, want %+v", st, want)
			}
		})
	}
}

func TestVendorSignedImageInstalls(t *testing.T) {
	img := randomImage(10<<10, 13)
	pub, key, _ := ed25519.GenerateKey(newSeeded(3))
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, key))
	s := newSim(t, 1024)
	s.cfg.VendorKeys = []ed25519.PublicKey{pub}
	res, _, err := update(t, gw, s.device(t))
	if err != nil || res.Outcome != devicelib.Installed {
		t.Fatalf("%v %+v", err, res)
	}
	checkSlot(t, s, img)
}

func TestWrongKeyFailsWithoutTouchingFlash(t *testing.T) {
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	img := randomImage(1<<10, 14)
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 1024)
	s.cfg.PSK[0] ^= 1
	res, gs, err := update(t, gw, s.device(t))
	var pe *protocol.PeerError
	if !errors.As(err, &pe) || pe.Authenticated || !errors.Is(err, protocol.ErrAuthFailed) || res.Outcome != devicelib.Failed {
		t.Fatalf("%v %+v", err, res)
	}
	if !errors.Is(gs.Err, protocol.ErrAuthFailed) {
		t.Fatalf("gateway: %v", gs.Err)
	}
	if st := s.flash.Stats(); st.Writes != 0 || st.Erases != 0 {
		t.Fatalf("flash touched: %+v", st)
	}
}

func TestBootCounterIsSavedBeforeTheHello(t *testing.T) {
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	img := randomImage(1<<10, 15)
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 1024)
	s.store.FailSave = func(n int) error { return errors.New("power cut") }
	_, gs, err := update(t, gw, s.device(t))
	if !errors.Is(err, protocol.ErrFlash) || gs.Hello != nil {
		t.Fatalf("device: %v; gateway saw hello %v", err, gs.Hello)
	}
	s.store.FailSave = nil
	var last uint32
	for i := range 3 {
		_, gs, _ := update(t, gw, s.device(t))
		if gs.Hello == nil || gs.BootCounter() <= last || gs.BootCounter() != s.state(t).BootCounter {
			t.Fatalf("session %d: counter %d after %d, stored %d", i, gs.BootCounter(), last, s.state(t).BootCounter)
		}
		last = gs.BootCounter()
	}
}

// stallingGateway accepts connections and reads them without ever answering.
func stallingGateway(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var b [512]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestContextEndsAStalledSessionPromptly(t *testing.T) {
	addr := stallingGateway(t)
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := tc.ctx()
			defer cancel()
			d := newSim(t, 1024).device(t)
			start := time.Now()
			_, err = d.Update(ctx, c)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("took %v", el)
			}
		})
	}
}

func TestUpdateWhileUpdatingIsRefused(t *testing.T) {
	addr := stallingGateway(t)
	d := newSim(t, 1024).device(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := d.Update(ctx, c); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for d.State().BootCounter == 0 && time.Now().Before(deadline) { // until the first Update runs
		time.Sleep(time.Millisecond)
	}
	if _, err := d.Update(context.Background(), &bytes.Buffer{}); !errors.Is(err, devicelib.ErrInUse) {
		t.Fatalf("second Update: %v", err)
	}
	if err := d.Reboot(); !errors.Is(err, devicelib.ErrInUse) {
		t.Fatalf("Reboot during Update: %v", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first Update: %v", err)
	}
}

func TestManyDevicesUpdateConcurrently(t *testing.T) {
	const n = 24
	img := randomImage(48<<10+7, 16)
	keys := map[string][protocol.KeySize]byte{}
	for i := range n {
		keys[fmt.Sprintf("dev-%02d", i)] = [protocol.KeySize]byte{byte(i), 1}
	}
	gw := testgw.Start(t, protocol.MaxPayload, keys)
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	var wg sync.WaitGroup
	var mu sync.Mutex
	progress := map[string]uint32{}
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("dev-%02d", i)
			f, _ := devicelib.NewMemFlash(64<<10, sectorSize)
			d, err := devicelib.New(devicelib.Config{ID: id, PSK: keys[id], Class: testClass,
				MaxPayload: []int{64, 512, 1024, 4096}[i%4], Flash: f, Store: &devicelib.MemStore{},
				Progress: func(p devicelib.Progress) {
					mu.Lock()
					progress[p.DeviceID] = p.Received
					mu.Unlock()
				}})
			if err != nil {
				errs <- err
				return
			}
			c, err := net.Dial("tcp", gw.Addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			res, err := d.Update(context.Background(), c)
			if err != nil || res.Outcome != devicelib.Installed {
				errs <- fmt.Errorf("%s: %v %+v", id, err, res)
				return
			}
			got := make([]byte, len(img))
			f.Read(0, got)
			if !bytes.Equal(got, img) {
				errs <- fmt.Errorf("%s: slot differs", id)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		gw.Next(t)
		if p := progress[fmt.Sprintf("dev-%02d", i)]; p != uint32(len(img)) {
			t.Errorf("dev-%02d: last progress %d", i, p)
		}
	}
}

func TestConfigIsCheckedWithErrorsNamingTheField(t *testing.T) {
	f, _ := devicelib.NewMemFlash(64<<10, sectorSize)
	good := devicelib.Config{ID: testID, Class: testClass, Flash: f, Store: &devicelib.MemStore{}}
	for _, tc := range []struct {
		field string
		edit  func(*devicelib.Config)
	}{
		{"Config.ID", func(c *devicelib.Config) { c.ID = "" }},
		{"Config.ID", func(c *devicelib.Config) { c.ID = "has space" }},
		{"Config.Class", func(c *devicelib.Config) { c.Class = "" }},
		{"Config.MaxPayload", func(c *devicelib.Config) { c.MaxPayload = 32 }},
		{"Config.MaxPayload", func(c *devicelib.Config) { c.MaxPayload = 8192 }},
		{"Config.AckEvery", func(c *devicelib.Config) { c.AckEvery = 1001 }},
		{"Config.Flash", func(c *devicelib.Config) { c.Flash = nil }},
		{"Config.Store", func(c *devicelib.Config) { c.Store = nil }},
	} {
		c := good
		tc.edit(&c)
		if _, err := devicelib.New(c); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.field)) {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	if _, err := devicelib.New(good); err != nil {
		t.Fatal(err)
	}
}

// lyingFlash programs one bit wrong at off and says nothing: a failing flash cell.
type lyingFlash struct {
	devicelib.Flash
	off int64
}

func (f *lyingFlash) Write(off int64, p []byte) error {
	if f.off >= off && f.off < off+int64(len(p)) {
		q := append([]byte{}, p...)
		q[f.off-off] ^= 0x04
		p = q
	}
	return f.Flash.Write(off, p)
}

func TestFinalVerificationReadsTheSlotBackNotTheStream(t *testing.T) {
	img := randomImage(20<<10, 17)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 1024)
	s.cfg.Flash = &lyingFlash{Flash: s.flash, off: 12345}
	res, gs, err := update(t, gw, s.device(t))
	if !errors.Is(err, protocol.ErrDigestMismatch) || res.Outcome != devicelib.Failed || gs.Report.Code != protocol.CodeDigestMismatch {
		t.Fatalf("a mis-programmed slot: %v, %+v, report %+v", err, res, gs.Report)
	}
	if st := s.state(t); !st.Pending.IsZero() || !st.Resume.IsZero() {
		t.Fatalf("state %+v", st)
	}
}

// flakyReadFlash returns one bit wrong the first time off is read: an unreliable read path.
type flakyReadFlash struct {
	devicelib.Flash
	off  int64
	done bool
}

func (f *flakyReadFlash) Read(off int64, p []byte) error {
	err := f.Flash.Read(off, p)
	if !f.done && f.off >= off && f.off < off+int64(len(p)) {
		p[f.off-off] ^= 0x01
		f.done = true
	}
	return err
}

func TestFinalVerificationComparesTheStreamedHashToo(t *testing.T) {
	img := randomImage(40<<10, 18)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 1024)
	durable := cutOnce(t, gw, s, 20<<10)
	// The resume rebuilds its hash from a misread; the slot itself reads back right later.
	s.cfg.Flash = &flakyReadFlash{Flash: s.flash, off: int64(durable) / 2}
	res, gs, err := update(t, gw, s.device(t))
	if !errors.Is(err, protocol.ErrDigestMismatch) || res.Outcome != devicelib.Failed || gs.Report.Code != protocol.CodeDigestMismatch {
		t.Fatalf("%v, %+v, report %+v", err, res, gs.Report)
	}
}

func TestRebootKeepsTheRollbackFloor(t *testing.T) {
	s := newSim(t, 1024)
	img := randomImage(4<<10, 19)
	s.flash.Write(0, img)
	staged := devicelib.Image{Seq: 4, Size: uint32(len(img)), Digest: sha256.Sum256(img)}
	running := devicelib.Image{Seq: 5, Size: 100}
	if err := s.store.Save(devicelib.State{BootCounter: 1, Class: testClass, Running: running, Pending: staged}); err != nil {
		t.Fatal(err)
	}
	d := s.device(t)
	if err := d.Reboot(); !errors.Is(err, protocol.ErrRollback) {
		t.Fatalf("booting sequence 4 over 5: %v", err)
	}
	if st := d.State(); st.Running != running || !st.Pending.IsZero() {
		t.Fatalf("state %+v", st)
	}
}

// The default durable interval: a cut past the first 32 KiB resumes there, one before it
// from the start, and the Acks on the wire come only at those points.
func TestDefaultAckEvery(t *testing.T) {
	img := randomImage(100<<10, 31)
	gw := testgw.Start(t, protocol.MaxPayload, testKeys())
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	s := newSim(t, 1024)
	s.cfg.AckEvery = 0
	if got := cutOnce(t, gw, s, 70<<10); got != 2*devicelib.DefaultAckEvery {
		t.Fatalf("cut after ~70 KiB left %d durable, want %d", got, 2*devicelib.DefaultAckEvery)
	}
	res, gs, err := update(t, gw, s.device(t))
	if err != nil || res.ResumedFrom != 2*devicelib.DefaultAckEvery {
		t.Fatalf("resume: %+v, %v", res, err)
	}
	// Durable points past the resume: 96 KiB only (the end is the Report's).
	if len(gs.Acks) != 1 || gs.Acks[0] != 3*devicelib.DefaultAckEvery {
		t.Fatalf("acks %v, want [%d]", gs.Acks, 3*devicelib.DefaultAckEvery)
	}
}
