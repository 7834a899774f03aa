package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

func TestMemoryTransferDeliversExactImage(t *testing.T) {
	for _, chunk := range []int{64, 100, 256, 1024, 4096} {
		for _, size := range []int{1, 63, 64, 65, 3*chunk - 1, 3 * chunk, 3*chunk + 1} {
			img := randomImage(size, byte(size))
			ds, gs := memHandshake(t, deviceConfig(chunk), gatewayConfig(t, 4096), manifestFor(img, 2), 0)
			var got []byte
			fs := frames(t, gs, img)
			for i, f := range fs {
				p, final, err := ds.OpenData(f)
				if err != nil {
					t.Fatalf("chunk %d size %d frame %d: %v", chunk, size, i, err)
				}
				if final != (i == len(fs)-1) {
					t.Fatalf("chunk %d size %d: frame %d final=%v", chunk, size, i, final)
				}
				got = append(got, p...)
			}
			if !bytes.Equal(got, img) || !ds.Done() {
				t.Fatalf("chunk %d size %d: image differs or not done", chunk, size)
			}
			if want := (size + chunk - 1) / chunk; len(fs) != want {
				t.Fatalf("chunk %d size %d: %d frames, want %d", chunk, size, len(fs), want)
			}
		}
	}
}

func TestResumeAtOffsetSendsOnlyTheRest(t *testing.T) {
	img := randomImage(5000, 9)
	for _, off := range []uint32{0, 1, 999, 1024, 4999, 5000} {
		ds, gs := memHandshake(t, deviceConfig(1024), gatewayConfig(t, 4096), manifestFor(img, 2), off)
		got := append([]byte(nil), img[:off]...)
		for _, f := range frames(t, gs, img) {
			p, _, err := ds.OpenData(f)
			if err != nil {
				t.Fatalf("offset %d: %v", off, err)
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, img) || !ds.Done() {
			t.Fatalf("resume at %d: image differs", off)
		}
	}
}

// Every manipulation of the data stream must fail on the device with its typed error.
func TestDeviceRejectsManipulatedStream(t *testing.T) {
	img := randomImage(10*256, 3)
	type tc struct {
		name   string
		mangle func(fs [][]byte) [][]byte // the frames the device receives
		want   error
	}
	flip := func(i, at int) func([][]byte) [][]byte {
		return func(fs [][]byte) [][]byte {
			f := append([]byte(nil), fs[i]...)
			f[at%len(f)] ^= 0x01
			fs[i] = f
			return fs
		}
	}
	cases := []tc{
		{"flipped payload bit", flip(2, 10), protocol.ErrBadRecord},
		{"flipped tag bit", flip(2, -1+3+256+16), protocol.ErrBadRecord},
		{"flipped type bit", flip(2, 0), protocol.ErrUnexpectedMessage},
		{"flipped length bit", flip(2, 2), protocol.ErrMalformed},
		{"replayed frame", func(fs [][]byte) [][]byte { return append(fs[:3:3], fs[2]) }, protocol.ErrBadRecord},
		{"reordered frames", func(fs [][]byte) [][]byte {
			fs[3], fs[4] = fs[4], fs[3]
			return fs
		}, protocol.ErrBadRecord},
		{"dropped frame", func(fs [][]byte) [][]byte { return append(fs[:3:3], fs[4:]...) }, protocol.ErrBadRecord},
		{"frame from another session", func(fs [][]byte) [][]byte {
			gc, err := protocol.NewGatewayConfig("gw-lobby", 4096, newSeeded(99)) // another Ng
			if err != nil {
				t.Fatal(err)
			}
			_, other := memHandshake(t, deviceConfig(256), gc, manifestFor(img, 2), 0)
			return append(fs[:1:1], frames(t, other, img)[1])
		}, protocol.ErrBadRecord},
		{"final marker on a middle frame", func(fs [][]byte) [][]byte {
			f := append([]byte(nil), fs[9]...)
			return append(fs[:9:9], f[:3+100])
		}, protocol.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, gs := memHandshake(t, deviceConfig(256), gatewayConfig(t, 4096), manifestFor(img, 2), 0)
			var err error
			for _, f := range c.mangle(frames(t, gs, img)) {
				before := ds.Offset()
				if _, _, err = ds.OpenData(f); err != nil {
					if ds.Offset() != before {
						t.Fatalf("offset moved from %d to %d on a rejected frame", before, ds.Offset())
					}
					break
				}
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if ds.Done() {
				t.Fatal("a manipulated stream completed")
			}
		})
	}
}

func TestFinalBindsSizeAndDigest(t *testing.T) {
	img := randomImage(700, 4)
	// The gateway seals for one digest, the device expects another: only the Final fails.
	dc := deviceConfig(256)
	gc := gatewayConfig(t, 4096)
	ds, _ := memHandshake(t, dc, gc, manifestFor(img, 2), 0)
	other := manifestFor(img, 2)
	other.Digest[0] ^= 1
	// Sessions are keyed by their transcripts, so reuse the device's keys by replaying the
	// same deterministic handshake with the other manifest: same seeds, same nonces.
	_, gs := memHandshake(t, deviceConfig(256), gatewayConfig(t, 4096), other, 0)
	fs := frames(t, gs, img)
	var err error
	for _, f := range fs {
		if _, _, err = ds.OpenData(f); err != nil {
			break
		}
	}
	if !errors.Is(err, protocol.ErrBadRecord) || ds.Done() {
		t.Fatalf("final with another digest: err %v done %v", err, ds.Done())
	}
}

func TestPolicyRefusals(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(newSeeded(5))
	img := randomImage(300, 5)
	signed := func(m *protocol.Manifest) *protocol.Manifest {
		st := m.Statement()
		sig, err := st.Sign(priv)
		if err != nil {
			t.Fatal(err)
		}
		m.Signed, m.Signature = true, sig
		return m
	}
	cases := []struct {
		name string
		cfg  func(*protocol.DeviceConfig)
		m    *protocol.Manifest
		want error
	}{
		{"rollback", func(c *protocol.DeviceConfig) { c.Running = 5 }, manifestFor(img, 4), protocol.ErrRollback},
		{"same sequence", func(c *protocol.DeviceConfig) { c.Running = 4 }, manifestFor(img, 4), protocol.ErrDeclined},
		{"foreign class", func(c *protocol.DeviceConfig) { c.Class = "other" }, manifestFor(img, 4), protocol.ErrWrongClass},
		{"too large", func(c *protocol.DeviceConfig) { c.MaxImage = 299 }, manifestFor(img, 4), protocol.ErrTooLarge},
		{"unsigned when keys set", func(c *protocol.DeviceConfig) { c.VendorKeys = []ed25519.PublicKey{pub} }, manifestFor(img, 4), protocol.ErrBadSignature},
		{"signature over other digest", func(c *protocol.DeviceConfig) { c.VendorKeys = []ed25519.PublicKey{pub} }, func() *protocol.Manifest {
			m := signed(manifestFor(img, 4))
			m.Digest[3] ^= 1
			return m
		}(), protocol.ErrBadSignature},
		{"valid signature accepted", func(c *protocol.DeviceConfig) { c.VendorKeys = []ed25519.PublicKey{pub} }, signed(manifestFor(img, 4)), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dc := deviceConfig(256)
			c.cfg(dc)
			dh, _ := protocol.NewDeviceHandshake(dc)
			gh := protocol.NewGatewayHandshake(gatewayConfig(t, 4096))
			if _, err := gh.ReadHello(dh.Hello(), lookupOne(dc.DeviceID, dc.PSK)); err != nil {
				t.Fatal(err)
			}
			offer, _ := gh.AppendOffer(nil, &protocol.Offer{Status: protocol.StatusOffer, Manifest: c.m})
			o, err := dh.ReadOffer(offer)
			if err != nil {
				t.Fatal(err)
			}
			policy := dc.Check(o.Manifest)
			if !errors.Is(policy, c.want) || (c.want == nil) != (policy == nil) {
				t.Fatalf("policy %v, want %v", policy, c.want)
			}
			code := protocol.CodeFor(policy)
			if policy == nil {
				code = protocol.CodeOK
			}
			acc, ds, err := dh.AppendAccept(nil, code, 0)
			if err != nil {
				t.Fatal(err)
			}
			a, gs, err := gh.ReadAccept(acc)
			if c.want == nil {
				if err != nil || gs == nil || ds == nil {
					t.Fatalf("accept: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || gs != nil || ds != nil || a.Code != code {
				t.Fatalf("gateway saw %v (code %d), want %v", err, a.Code, c.want)
			}
		})
	}
}

func TestAckOffsetsCannotRunAheadOrBack(t *testing.T) {
	img := randomImage(2048, 6)
	ds, gs := memHandshake(t, deviceConfig(512), gatewayConfig(t, 4096), manifestFor(img, 2), 0)
	fs := frames(t, gs, img) // all sent: sent offset = 2048
	for _, f := range fs[:2] {
		if _, _, err := ds.OpenData(f); err != nil {
			t.Fatal(err)
		}
	}
	ack, _ := ds.AppendAck(nil, 1024)
	if m, err := gs.ReadDeviceFrame(ack); err != nil || m.Offset != 1024 || gs.Acked() != 1024 {
		t.Fatalf("ack 1024: %+v %v", m, err)
	}
	back, _ := ds.AppendAck(nil, 512)
	if _, err := gs.ReadDeviceFrame(back); !errors.Is(err, protocol.ErrMalformed) {
		t.Fatalf("backwards ack: %v", err)
	}
	ahead, _ := ds.AppendAck(nil, 4096)
	if _, err := gs.ReadDeviceFrame(ahead); !errors.Is(err, protocol.ErrMalformed) {
		t.Fatalf("ack past sent: %v", err)
	}
	alert, _ := ds.AppendAlert(nil, protocol.CodeFlashError)
	if _, err := gs.ReadDeviceFrame(alert); !errors.Is(err, protocol.ErrFlash) {
		t.Fatalf("alert: %v", err)
	}
}

// eofReader returns io.EOF together with a full read at the end, as io.ReaderAt allows.
type eofReader struct{ b []byte }

func (r eofReader) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, r.b[off:])
	if off+int64(n) == int64(len(r.b)) {
		return n, io.EOF
	}
	return n, nil
}

func TestAppendFrameTakesAFullReadWithEOF(t *testing.T) {
	img := randomImage(1000, 8)
	ds, gs := memHandshake(t, deviceConfig(256), gatewayConfig(t, 4096), manifestFor(img, 2), 0)
	var got []byte
	for !gs.Done() {
		f, err := gs.AppendFrame(nil, eofReader{img})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := ds.OpenData(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("image differs")
	}
	if _, err := gs.AppendFrame(nil, eofReader{img}); err == nil {
		t.Fatal("a frame after the Final")
	}
}
