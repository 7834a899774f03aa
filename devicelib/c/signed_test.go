package c_test

// The C device built with FOTA_WITH_ED25519 (tests/vectors.c as build/vectors_ed25519): the
// vendor-signed sessions of v1.json replayed byte for byte with the vendor key, and sessions
// against the Go gateway role in which every unsigned or badly signed offer must be refused in
// the Accept with bad_signature (PROTOCOL.md 4.3, 7) before flash is touched, as the Go device
// refuses it (devicelib's TestRefusedOffersChangeNothingButTheBootCounter).

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

// startSignedDevice starts an Ed25519 build of the device harness, configured as
// newTestDevice does, holding the given vendor keys.
func startSignedDevice(t *testing.T, keys ...ed25519.PublicKey) *device {
	t.Helper()
	d := &device{startProgram(t, func() (string, error) { return testBinary("vectors_ed25519") })}
	if got := d.configure(deviceConfig{id: testID, class: testClass, psk: testKey[:],
		maxPayload: 1024, slot: testSlot, ackEvery: testSectorSz}); got != "ok" {
		t.Fatalf("fota_init: %s", got)
	}
	d.vendorKeys(keys...)
	d.setState(storedState{boot: testBoot, running: testRunning})
	d.do("random", "000102030405060708090a0b")
	return d
}

// vendorKeys sets the keys in the config; the next "init" (gateway.hello) takes them.
func (d *device) vendorKeys(keys ...ed25519.PublicKey) {
	all := "-"
	if len(keys) > 0 {
		all = hex.EncodeToString(slices.Concat(keys...))
	}
	if a := d.do("vendor", all); a[0] != "ok" {
		d.t.Fatalf("vendor: %q", a)
	}
}

func vendorKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return key.Public().(ed25519.PublicKey), key
}

// signedOffer offers img as sequence seq, signed with key (unsigned if key is nil).
func signedOffer(t *testing.T, img []byte, seq uint32, key ed25519.PrivateKey) *protocol.Manifest {
	t.Helper()
	m := offerOf(img, seq).Manifest
	if key != nil {
		st := m.Statement()
		sig, err := st.Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		m.Signed, m.Signature = true, sig
	}
	return m
}

// vectorVendorKeys returns the vendor public key (hex) of each signed session of v1.json.
func vectorVendorKeys(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "protocol", "testdata", "vectors", "v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sessions []struct {
			Name            string `json:"name"`
			VendorPublicKey string `json:"vendor_public_key"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, s := range f.Sessions {
		if s.VendorPublicKey != "" {
			keys[s.Name] = s.VendorPublicKey
		}
	}
	if len(keys) == 0 {
		t.Fatal("v1.json has no vendor-signed session")
	}
	return keys
}

func TestSignedVectorSessionsInstallWithTheVendorKey(t *testing.T) {
	f := loadVectors(t)
	vendor := vectorVendorKeys(t)
	for i := range f.Sessions {
		v := &f.Sessions[i]
		if vendor[v.Name] == "" {
			continue
		}
		for _, s := range splitters(uint64(i) + 1)[:2] {
			t.Run(v.Name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				d := &device{startProgram(t, func() (string, error) { return testBinary("vectors_ed25519") })}
				if got := d.configure(deviceConfig{id: v.DeviceID, class: v.Class, psk: mustHex(t, v.PSK),
					maxPayload: v.MaxPayload, slot: vectorSlot, ackEvery: vectorAckEvery}); got != "ok" {
					t.Fatalf("fota_init: %s", got)
				}
				_, other := vendorKey(99)
				// The vendor key second of two: each is tried.
				d.vendorKeys(other.Public().(ed25519.PublicKey), mustHex(t, vendor[v.Name]))
				d.do("init")
				d.setState(storedState{boot: v.BootCounter - 1, running: v.RunningSeq})
				d.do("random", v.NdRandom)
				if got, want := d.do("start"), []string{"send:" + v.Wire.Hello}; !slices.Equal(got, want) {
					t.Fatalf("start: got %q\nwant %q", got, want)
				}
				if got, want := d.feed(mustHex(t, v.Wire.Offer), s), []string{"offer", "send:" + v.Wire.Accept}; !slices.Equal(got, want) {
					t.Fatalf("offer: got %q\nwant %q", got, want)
				}
				var stream []byte
				for _, frame := range v.Wire.Data {
					stream = append(stream, mustHex(t, frame)...)
				}
				got := slices.DeleteFunc(d.feed(stream, s), func(e string) bool { return e == "progress" })
				if want := []string{"send:" + v.Wire.Ack, "send:" + v.Wire.Report, "done"}; !slices.Equal(got, want) {
					t.Fatalf("data: got %q\nwant %q", got, want)
				}
				if img := mustHex(t, v.Image); !bytes.Equal(d.slot(len(img)), img) {
					t.Fatal("the slot does not hold the image")
				}
			})
		}
	}
}

// The same signed vector offer, to a device that holds only another vendor key: refused with
// bad_signature in the Accept, nothing written.
func TestSignedVectorOfferRefusedUnderAnotherKey(t *testing.T) {
	f := loadVectors(t)
	vendor := vectorVendorKeys(t)
	for i := range f.Sessions {
		v := &f.Sessions[i]
		if vendor[v.Name] == "" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			d := &device{startProgram(t, func() (string, error) { return testBinary("vectors_ed25519") })}
			if got := d.configure(deviceConfig{id: v.DeviceID, class: v.Class, psk: mustHex(t, v.PSK),
				maxPayload: v.MaxPayload, slot: vectorSlot, ackEvery: vectorAckEvery}); got != "ok" {
				t.Fatalf("fota_init: %s", got)
			}
			key := mustHex(t, vendor[v.Name])
			key[0] ^= 1
			d.vendorKeys(key)
			d.do("init")
			d.setState(storedState{boot: v.BootCounter - 1, running: v.RunningSeq})
			d.do("random", v.NdRandom)
			d.do("start")
			evs := d.feed(mustHex(t, v.Wire.Offer), splitters(1)[0])
			if len(evs) != 2 || last(evs) != "error:bad_signature" || evs[0] == "send:"+v.Wire.Accept {
				t.Fatalf("offer: got %q, want an Accept refusing it and error:bad_signature", evs)
			}
			if st := d.do("stats"); st[0] != "0" || st[1] != "0" {
				t.Fatalf("flash erased or written: %q", st)
			}
		})
	}
}

func TestSignedDeviceInstallsVendorSignedImage(t *testing.T) {
	for _, c := range []struct {
		name string
		keys int // vendor keys the device holds; the signing one is the last
		size int
	}{
		{"one key", 1, 10_000},
		{"second of three keys", 3, 4097},
		{"image of one byte", 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var keys []ed25519.PublicKey
			var signer ed25519.PrivateKey
			for i := range c.keys {
				var pub ed25519.PublicKey
				pub, signer = vendorKey(byte(10 + i))
				keys = append(keys, pub)
			}
			img := randomImage(c.size, uint64(c.size))
			d := startSignedDevice(t, keys...)
			g := newGateway(t, 4096)
			g.hello(d)
			evs := g.offer(d, &protocol.Offer{Status: protocol.StatusOffer, Manifest: signedOffer(t, img, testRunning+1, signer)})
			if a, err := g.accept(evs); err != nil || a.Code != protocol.CodeOK {
				t.Fatalf("accept %+v, %v (events %q)", a, err, evs)
			}
			evs = d.feed(g.frames(img, -1), splitters(3)[2])
			if last(evs) != "done" {
				t.Fatalf("events end with %q, want done", last(evs))
			}
			msgs, err := g.read(evs)
			if err != nil {
				t.Fatalf("the Go gateway refused a device message: %v", err)
			}
			if r := msgs[len(msgs)-1]; r.Type != protocol.TypeReport || r.Code != protocol.CodeOK {
				t.Fatalf("last message %+v, want Report ok", r)
			}
			if !bytes.Equal(d.slot(len(img)), img) {
				t.Fatal("the slot does not hold the image")
			}
			if st := d.state(); st.pending.seq != testRunning+1 || st.pending.size != uint32(len(img)) {
				t.Fatalf("state %+v: image not pending", st)
			}
		})
	}
}

func TestSignedDeviceRefusesBadSignatures(t *testing.T) {
	img := randomImage(6000, 21)
	vendorPub, vendorPriv := vendorKey(1)
	_, otherPriv := vendorKey(2)
	signed := func() *protocol.Manifest { return signedOffer(t, img, testRunning+1, vendorPriv) }
	for _, c := range []struct {
		name string
		keys []ed25519.PublicKey
		m    func() *protocol.Manifest
	}{
		{"unsigned", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest { return signedOffer(t, img, testRunning+1, nil) }},
		{"signed by another key", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest { return signedOffer(t, img, testRunning+1, otherPriv) }},
		{"device holds no key", nil, signed},
		{"signature for another sequence", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			m := signed()
			m.Seq++
			return m
		}},
		{"signature for another size", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			m := signedOffer(t, img[:len(img)-1], testRunning+1, vendorPriv)
			m.Size++
			return m
		}},
		{"signature for another digest", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			m := signed()
			m.Digest[31] ^= 1
			return m
		}},
		{"signature for another class", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			st := signed().Statement()
			st.Class = "esp32-c3"
			sig, err := st.Sign(vendorPriv)
			if err != nil {
				t.Fatal(err)
			}
			m := signed()
			m.Signature = sig
			return m
		}},
		{"bit of R flipped", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			m := signed()
			m.Signature[5] ^= 0x10
			return m
		}},
		{"S + L (malleated)", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			m := signed()
			copy(m.Signature[32:], addLE(m.Signature[32:], groupOrder))
			return m
		}},
		{"signature of all zeros", []ed25519.PublicKey{vendorPub}, func() *protocol.Manifest {
			m := signed()
			m.Signature = [64]byte{}
			return m
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := c.m()
			if m.VerifySignature(c.keys) {
				t.Fatal("the Go reference accepts this signature: not a negative case")
			}
			d := startSignedDevice(t, c.keys...)
			g := newGateway(t, 4096)
			g.hello(d)
			evs := g.offer(d, &protocol.Offer{Status: protocol.StatusOffer, Manifest: m})
			if last(evs) != "error:bad_signature" {
				t.Fatalf("events %q, want error:bad_signature", evs)
			}
			a, err := g.accept(evs)
			var pe *protocol.PeerError
			if !errors.As(err, &pe) || a.Code != protocol.CodeBadSignature || a.Offset != 0 {
				t.Fatalf("Accept %+v, %v; want code bad_signature", a, err)
			}
			if st := d.state(); st.resume.size != 0 || st.pending.size != 0 || st.boot != testBoot+1 {
				t.Fatalf("a refusal changed the state beyond the boot counter: %+v", st)
			}
			if st := d.do("stats"); st[0] != "0" || st[1] != "0" {
				t.Fatalf("flash erased or written: %q", st)
			}
		})
	}
}

// A signed download cut in the middle resumes only after the signature verifies again in the
// new session; the installed image is the signed one.
func TestSignedDeviceResumesAfterVerifyingAgain(t *testing.T) {
	t.Parallel()
	img := randomImage(5*testSectorSz+300, 22)
	pub, priv := vendorKey(3)
	m := signedOffer(t, img, testRunning+1, priv)
	d := startSignedDevice(t, pub)
	g := newGateway(t, 4096)
	g.hello(d)
	if _, err := g.accept(g.offer(d, &protocol.Offer{Status: protocol.StatusOffer, Manifest: m})); err != nil {
		t.Fatal(err)
	}
	d.feed(g.frames(img, 9), splitters(1)[0]) // 9 KiB of 1 KiB chunks: two sectors durable
	if evs := d.do("close"); last(evs) != "error:truncated" {
		t.Fatalf("close: %q", evs)
	}
	durable := d.state().durable
	if durable != 2*testSectorSz {
		t.Fatalf("durable %d after the cut, want %d", durable, 2*testSectorSz)
	}

	// The second session with the signature broken is refused, and keeps the resume point...
	bad := *m
	bad.Signature[40] ^= 1
	g = newGateway(t, 4096)
	g.hello(d)
	a, _ := g.accept(g.offer(d, &protocol.Offer{Status: protocol.StatusOffer, Manifest: &bad}))
	if a == nil || a.Code != protocol.CodeBadSignature {
		t.Fatalf("Accept %+v, want bad_signature", a)
	}
	// ...the third, signed, resumes there and installs.
	g = newGateway(t, 4096)
	g.hello(d)
	a, err := g.accept(g.offer(d, &protocol.Offer{Status: protocol.StatusOffer, Manifest: m}))
	if err != nil || a.Code != protocol.CodeOK || a.Offset != durable {
		t.Fatalf("Accept %+v, %v; want ok from %d", a, err, durable)
	}
	if evs := d.feed(g.frames(img, -1), splitters(1)[0]); last(evs) != "done" {
		t.Fatalf("events end with %q", last(evs))
	}
	if !bytes.Equal(d.slot(len(img)), img) {
		t.Fatal("the slot does not hold the image")
	}
	if st := d.state(); st.pending.seq != m.Seq {
		t.Fatalf("state %+v", st)
	}
}
