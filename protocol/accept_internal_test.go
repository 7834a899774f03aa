package protocol

import (
	"crypto/sha256"
	"errors"
	"testing"
)

// A device may not move the start: the gateway has already sent frames from its own. The
// device API refuses to seal such an Accept, so this test forges one from inside.
func TestGatewayRefusesAnAcceptForAnotherOffset(t *testing.T) {
	img := make([]byte, 5000)
	m := &Manifest{Seq: 2, Size: uint32(len(img)), Class: "esp8266-v1", Digest: sha256.Sum256(img)}
	var psk [KeySize]byte
	dc := &DeviceConfig{DeviceID: "dev-1", PSK: psk, Class: m.Class, Running: 1, MaxPayload: 1024,
		Rand: &fixedReader{make([]byte, 12)}, Resume: ResumePoint{Offset: 2048, Digest: m.Digest}}
	dh, err := NewDeviceHandshake(dc)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := NewGatewayConfig("gw-1", 4096, &fixedReader{make([]byte, KeySize+NonceSize)})
	if err != nil {
		t.Fatal(err)
	}
	gh := NewGatewayHandshake(gc)
	if _, err := gh.ReadHello(dh.Hello(), func(string) ([KeySize]byte, bool) { return psk, true }); err != nil {
		t.Fatal(err)
	}
	offer, err := gh.AppendOffer(nil, &Offer{Status: StatusOffer, Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dh.ReadOffer(offer); err != nil {
		t.Fatal(err)
	}
	if dh.Start() != 2048 || gh.Session().Start() != 2048 {
		t.Fatalf("starts %d and %d, want 2048", dh.Start(), gh.Session().Start())
	}
	dh.start = 0 // a device that ignores the rule and asks for the whole image
	acc, _, err := dh.AppendAccept(nil, CodeOK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, s, err := gh.ReadAccept(acc); !errors.Is(err, ErrMalformed) || s != nil || gh.Session().Accepted() {
		t.Fatalf("Accept for offset 0 of a stream from 2048: session %v, %v; want malformed", s, err)
	}
}
