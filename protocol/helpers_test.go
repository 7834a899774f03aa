package protocol_test

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

// seeded is a deterministic io.Reader for nonces, so failures reproduce.
type seeded struct{ r *rand.ChaCha8 }

func newSeeded(seed byte) *seeded {
	var s [32]byte
	s[0] = seed
	return &seeded{rand.NewChaCha8(s)}
}

func (s *seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

var testPSK = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func lookupOne(id string, psk [32]byte) protocol.KeyLookup {
	return func(got string) ([32]byte, bool) {
		if got == id {
			return psk, true
		}
		return [32]byte{}, false
	}
}

func deviceConfig(maxPayload int) *protocol.DeviceConfig {
	return &protocol.DeviceConfig{
		DeviceID: "dev-1", PSK: testPSK, Class: "esp8266-v1", Running: 1,
		MaxPayload: maxPayload, BootCounter: 7, Rand: newSeeded(1),
	}
}

func gatewayConfig(t testing.TB, maxPayload int) *protocol.GatewayConfig {
	t.Helper()
	c, err := protocol.NewGatewayConfig("gw-lobby", maxPayload, newSeeded(2))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomImage(n int, seed byte) []byte {
	img := make([]byte, n)
	newSeeded(seed).Read(img)
	return img
}

func manifestFor(img []byte, seq uint32) *protocol.Manifest {
	return &protocol.Manifest{Seq: seq, Size: uint32(len(img)), Class: "esp8266-v1", Digest: sha256.Sum256(img)}
}

// offerTo runs Hello and Offer of m through the pure API; the device holds dc.Resume.
func offerTo(t testing.TB, dc *protocol.DeviceConfig, gc *protocol.GatewayConfig, m *protocol.Manifest) (*protocol.DeviceHandshake, *protocol.GatewayHandshake) {
	t.Helper()
	dh, err := protocol.NewDeviceHandshake(dc)
	if err != nil {
		t.Fatal(err)
	}
	gh := protocol.NewGatewayHandshake(gc)
	if _, err := gh.ReadHello(dh.Hello(), lookupOne(dc.DeviceID, dc.PSK)); err != nil {
		t.Fatal(err)
	}
	offer, err := gh.AppendOffer(nil, &protocol.Offer{Status: protocol.StatusOffer, Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dh.ReadOffer(offer); err != nil {
		t.Fatal(err)
	}
	return dh, gh
}

// memHandshake runs a whole handshake through the pure API and returns both data sessions.
func memHandshake(t testing.TB, dc *protocol.DeviceConfig, gc *protocol.GatewayConfig, m *protocol.Manifest, offset uint32) (*protocol.DeviceSession, *protocol.GatewaySession) {
	t.Helper()
	if offset > 0 { // the device holds offset bytes of this image: its Hello says so
		dc.Resume = protocol.ResumePoint{Offset: offset, Digest: m.Digest}
	}
	dh, gh := offerTo(t, dc, gc, m)
	acc, ds, err := dh.AppendAccept(nil, protocol.CodeOK, offset)
	if err != nil {
		t.Fatal(err)
	}
	_, gs, err := gh.ReadAccept(acc)
	if err != nil {
		t.Fatal(err)
	}
	return ds, gs
}

// frames produces every data frame of a session, each in its own slice.
func frames(t testing.TB, gs *protocol.GatewaySession, img []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for !gs.Done() {
		f, err := gs.AppendFrame(nil, bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}
