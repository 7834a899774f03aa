package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

// helloTo runs ReadHello on a fresh gateway and returns its error and the Reject it answers.
func helloTo(t *testing.T, hello []byte, lookup protocol.KeyLookup) ([]byte, error) {
	t.Helper()
	gh := protocol.NewGatewayHandshake(gatewayConfig(t, 4096))
	_, err := gh.ReadHello(hello, lookup)
	return protocol.AppendReject(nil, protocol.CodeFor(err)), err
}

func TestUnknownDeviceAndWrongKeyLookTheSame(t *testing.T) {
	dc := deviceConfig(512)
	dh, _ := protocol.NewDeviceHandshake(dc)
	wrong := testPSK
	wrong[31] ^= 0x80
	rejWrong, errWrong := helloTo(t, dh.Hello(), lookupOne(dc.DeviceID, wrong))
	rejUnknown, errUnknown := helloTo(t, dh.Hello(), lookupOne("someone-else", testPSK))
	if !errors.Is(errWrong, protocol.ErrAuthFailed) || !errors.Is(errUnknown, protocol.ErrAuthFailed) {
		t.Fatalf("wrong key: %v; unknown: %v", errWrong, errUnknown)
	}
	if !bytes.Equal(rejWrong, rejUnknown) {
		t.Fatalf("responses differ: %x vs %x", rejWrong, rejUnknown)
	}
	// The device sees an unauthenticated auth failure and no session.
	_, err := dh.ReadOffer(rejWrong)
	var pe *protocol.PeerError
	if !errors.As(err, &pe) || pe.Authenticated || !errors.Is(err, protocol.ErrAuthFailed) {
		t.Fatalf("device got %v", err)
	}
}

func TestGatewayRejectsBadHellos(t *testing.T) {
	dc := deviceConfig(512)
	dh, _ := protocol.NewDeviceHandshake(dc)
	good := dh.Hello()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name  string
		hello []byte
		want  error
	}{
		{"flipped mac1", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), protocol.ErrAuthFailed},
		{"flipped running seq", mod(func(b []byte) []byte { b[3+3+5+16] ^= 1; return b }), protocol.ErrAuthFailed},
		{"version 2", mod(func(b []byte) []byte { b[3] = 2; return b }), protocol.ErrUnsupportedVersion},
		{"unknown suite", mod(func(b []byte) []byte { b[4] = 9; return b }), protocol.ErrUnsupportedSuite},
		{"id_len past the end", mod(func(b []byte) []byte { b[5] = 200; return b }), protocol.ErrMalformed},
		{"length field lies", mod(func(b []byte) []byte { b[2]++; return b }), protocol.ErrMalformed},
		{"truncated", good[:20], protocol.ErrMalformed},
		{"not a hello", mod(func(b []byte) []byte { b[0] = protocol.TypeData; return b }), protocol.ErrUnexpectedMessage},
		// max_payload sits before resume_offset (4), resume_id (8) and mac1 (16)
		{"payload below minimum", mod(func(b []byte) []byte { b[len(b)-29] = 10; b[len(b)-30] = 0; return b }), protocol.ErrBadChunk},
		{"flipped resume offset", mod(func(b []byte) []byte { b[len(b)-25] ^= 1; return b }), protocol.ErrAuthFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := helloTo(t, c.hello, lookupOne(dc.DeviceID, dc.PSK))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestTamperedOfferAndAcceptFailTheirTags(t *testing.T) {
	img := randomImage(100, 1)
	for _, target := range []string{"offer nonce", "offer gateway id", "offer ciphertext", "accept"} {
		t.Run(target, func(t *testing.T) {
			dc := deviceConfig(512)
			dh, _ := protocol.NewDeviceHandshake(dc)
			gh := protocol.NewGatewayHandshake(gatewayConfig(t, 4096))
			if _, err := gh.ReadHello(dh.Hello(), lookupOne(dc.DeviceID, dc.PSK)); err != nil {
				t.Fatal(err)
			}
			offer, _ := gh.AppendOffer(nil, &protocol.Offer{Status: protocol.StatusOffer, Manifest: manifestFor(img, 2)})
			switch target {
			case "offer nonce":
				offer[3] ^= 1
			case "offer gateway id":
				offer[3+17] ^= 1 // "gw-lobby" -> "fw-lobby": still a valid ID
			case "offer ciphertext":
				offer[len(offer)-20] ^= 1
			}
			_, err := dh.ReadOffer(offer)
			if target != "accept" {
				if !errors.Is(err, protocol.ErrBadRecord) {
					t.Fatalf("device accepted a tampered offer: %v", err)
				}
				return
			}
			acc, _, _ := dh.AppendAccept(nil, protocol.CodeOK, 0)
			acc[5] ^= 1
			if _, gs, err := gh.ReadAccept(acc); !errors.Is(err, protocol.ErrBadRecord) || gs != nil {
				t.Fatalf("gateway accepted a tampered accept: %v", err)
			}
		})
	}
}

// A replayed Hello gets a fresh Ng, so the Accept recorded from the old session fails: no
// data flows to a replaying attacker.
func TestReplayedHelloCannotBeCompleted(t *testing.T) {
	img := randomImage(100, 1)
	dc := deviceConfig(512)
	dh, _ := protocol.NewDeviceHandshake(dc)
	hello := append([]byte(nil), dh.Hello()...)
	run := func(seed byte) (*protocol.GatewayHandshake, []byte) {
		gc, _ := protocol.NewGatewayConfig("gw-lobby", 4096, newSeeded(seed))
		gh := protocol.NewGatewayHandshake(gc)
		if _, err := gh.ReadHello(hello, lookupOne(dc.DeviceID, dc.PSK)); err != nil {
			t.Fatal(err)
		}
		offer, _ := gh.AppendOffer(nil, &protocol.Offer{Status: protocol.StatusOffer, Manifest: manifestFor(img, 2)})
		return gh, offer
	}
	_, offer := run(10)
	if _, err := dh.ReadOffer(offer); err != nil {
		t.Fatal(err)
	}
	recorded, _, _ := dh.AppendAccept(nil, protocol.CodeOK, 0)
	replayGW, _ := run(11)
	if _, gs, err := replayGW.ReadAccept(recorded); !errors.Is(err, protocol.ErrBadRecord) || gs != nil {
		t.Fatalf("replayed session completed: %v", err)
	}
}

func TestUpToDateAndRetryOffersEndWithoutData(t *testing.T) {
	for _, o := range []*protocol.Offer{{Status: protocol.StatusUpToDate}, {Status: protocol.StatusRetry, RetryAfter: 30}} {
		dc := deviceConfig(512)
		dh, _ := protocol.NewDeviceHandshake(dc)
		gh := protocol.NewGatewayHandshake(gatewayConfig(t, 4096))
		if _, err := gh.ReadHello(dh.Hello(), lookupOne(dc.DeviceID, dc.PSK)); err != nil {
			t.Fatal(err)
		}
		offer, err := gh.AppendOffer(nil, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dh.ReadOffer(offer)
		if err != nil || got.Status != o.Status || got.RetryAfter != o.RetryAfter || got.GatewayID != "gw-lobby" {
			t.Fatalf("offer %+v: %v", got, err)
		}
		if _, _, err := dh.AppendAccept(nil, protocol.CodeOK, 0); err == nil {
			t.Fatal("device accepted an offer without an image")
		}
		acc, ds, err := dh.AppendAccept(nil, protocol.CodeDeclined, 0)
		if err != nil || ds != nil {
			t.Fatal(err)
		}
		a, gs, err := gh.ReadAccept(acc)
		if err != nil || gs != nil || a.Code != protocol.CodeDeclined {
			t.Fatalf("gateway: %+v %v", a, err)
		}
	}
}

func TestDeviceBoundToOneGateway(t *testing.T) {
	dc := deviceConfig(512)
	dc.GatewayID = "gw-plant"
	dh, _ := protocol.NewDeviceHandshake(dc)
	gh := protocol.NewGatewayHandshake(gatewayConfig(t, 4096)) // "gw-lobby"
	if _, err := gh.ReadHello(dh.Hello(), lookupOne(dc.DeviceID, dc.PSK)); err != nil {
		t.Fatal(err)
	}
	offer, _ := gh.AppendOffer(nil, &protocol.Offer{Status: protocol.StatusUpToDate})
	if _, err := dh.ReadOffer(offer); !errors.Is(err, protocol.ErrAuthFailed) {
		t.Fatalf("got %v", err)
	}
}

func TestReadFrameChecksLengthBeforeReading(t *testing.T) {
	buf := make([]byte, 64)
	// Header claims 60,000 bytes; the reader must refuse without waiting for them.
	_, err := protocol.ReadFrame(bytes.NewReader([]byte{protocol.TypeHello, 0xea, 0x60}), buf, protocol.MaxHelloBody)
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	_, err = protocol.ReadFrame(bytes.NewReader([]byte{protocol.TypeHello, 0, 10, 1, 2}), buf, protocol.MaxHelloBody)
	if !errors.Is(err, protocol.ErrTruncated) {
		t.Fatalf("short body: %v", err)
	}
	_, err = protocol.ReadFrame(bytes.NewReader([]byte{protocol.TypeHello}), buf, protocol.MaxHelloBody)
	if !errors.Is(err, protocol.ErrTruncated) {
		t.Fatalf("short header: %v", err)
	}
}
