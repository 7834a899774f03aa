package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"testing"
)

// Replays testdata/vectors/v1.json through the public API only, the way another
// implementation (devicelib/c) replays it: same inputs, byte-identical wire, same rejections.

func loadVectors(t *testing.T) *vectorFile {
	t.Helper()
	b, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Sessions) == 0 || len(f.Negative) == 0 {
		t.Fatal("empty vector file")
	}
	return &f
}

func (v *sessionVector) deviceConfig(t *testing.T) *DeviceConfig {
	c := &DeviceConfig{DeviceID: v.DeviceID, Class: v.Class, Running: v.Running, MaxPayload: v.MaxPayload,
		BootCounter: v.BootCounter, Rand: &fixedReader{unhex(t, v.NdRandom)}}
	copy(c.PSK[:], unhex(t, v.PSK))
	if v.VendorPublicKey != "" {
		c.VendorKeys = []ed25519.PublicKey{unhex(t, v.VendorPublicKey)}
	}
	if v.ResumeOffset > 0 {
		c.Resume.Offset = v.ResumeOffset
		copy(c.Resume.Digest[:], unhex(t, v.ResumeDigest))
	}
	return c
}

func (v *sessionVector) gatewayConfig(t *testing.T) *GatewayConfig {
	c, err := NewGatewayConfig(v.GatewayID, v.GatewayMaxPayload, &fixedReader{append(make([]byte, KeySize), unhex(t, v.Ng)...)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (v *sessionVector) lookup(t *testing.T) KeyLookup {
	var psk [KeySize]byte
	copy(psk[:], unhex(t, v.PSK))
	return func(id string) ([KeySize]byte, bool) { return psk, id == v.DeviceID }
}

func (v *sessionVector) offer(t *testing.T) *Offer {
	o := &Offer{Status: v.Offer.Status, RetryAfter: v.Offer.RetryAfter}
	if o.Status == StatusOffer {
		m := &Manifest{Seq: v.Offer.Seq, Size: v.Offer.Size, Class: v.Offer.Class}
		copy(m.Digest[:], unhex(t, v.Offer.Digest))
		if v.Offer.Signature != "" {
			m.Signed = true
			copy(m.Signature[:], unhex(t, v.Offer.Signature))
		}
		o.Manifest = m
	}
	return o
}

func TestVectorSessionsReplayByteForByte(t *testing.T) {
	for _, v := range loadVectors(t).Sessions {
		t.Run(v.Name, func(t *testing.T) {
			// Device role: same Hello and Accept bytes, the image back from the data frames.
			dh, err := NewDeviceHandshake(v.deviceConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(dh.Hello()); got != v.Wire.Hello {
				t.Fatalf("hello\n got %s\nwant %s", got, v.Wire.Hello)
			}
			o, err := dh.ReadOffer(unhex(t, v.Wire.Offer))
			if err != nil {
				t.Fatal(err)
			}
			if o.Status == StatusOffer {
				policy := dh.cfg.Check(o.Manifest)
				if (policy == nil) != (v.AcceptCode == CodeOK) || (policy != nil && CodeFor(policy) != v.AcceptCode) {
					t.Fatalf("policy %v, vector answers code %d", policy, v.AcceptCode)
				}
				if policy == nil && dh.Start() != v.AcceptOffset {
					t.Fatalf("start %d, vector accepts at %d", dh.Start(), v.AcceptOffset)
				}
			}
			acc, ds, err := dh.AppendAccept(nil, v.AcceptCode, v.AcceptOffset)
			if err != nil || hex.EncodeToString(acc) != v.Wire.Accept {
				t.Fatalf("accept %x, %v", acc, err)
			}
			img := unhex(t, v.Image)
			if ds != nil {
				got := append([]byte(nil), img[:v.AcceptOffset]...)
				for _, f := range v.Wire.Data {
					p, _, err := ds.OpenData(unhex(t, f))
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, p...)
				}
				if !bytes.Equal(got, img) || !ds.Done() || sha256.Sum256(got) != [32]byte(unhex(t, v.Offer.Digest)) {
					t.Fatal("image not reproduced")
				}
				ack, _ := ds.AppendAck(nil, v.Offer.Size)
				rep, _ := ds.AppendReport(nil, CodeOK, v.Offer.Size)
				if hex.EncodeToString(ack) != v.Wire.Ack || hex.EncodeToString(rep) != v.Wire.Report {
					t.Fatal("ack or report bytes differ")
				}
			}

			// Gateway role: same Offer and data bytes.
			gh := NewGatewayHandshake(v.gatewayConfig(t))
			if _, err := gh.ReadHello(unhex(t, v.Wire.Hello), v.lookup(t)); err != nil {
				t.Fatal(err)
			}
			offer, err := gh.AppendOffer(nil, v.offer(t))
			if err != nil || hex.EncodeToString(offer) != v.Wire.Offer {
				t.Fatalf("offer differs: %v", err)
			}
			_, gs, err := gh.ReadAccept(unhex(t, v.Wire.Accept))
			if err != nil && Reason(err) != CodeName(v.AcceptCode) {
				t.Fatal(err)
			}
			for i := 0; gs != nil && !gs.Done(); i++ {
				f, err := gs.AppendFrame(nil, bytes.NewReader(img))
				if err != nil || hex.EncodeToString(f) != v.Wire.Data[i] {
					t.Fatalf("data frame %d differs: %v", i, err)
				}
			}
		})
	}
}

// discard is the outbound side of a replayed role: what it sends goes nowhere.
type replayRW struct {
	io.Reader
}

func (replayRW) Write(p []byte) (int, error) { return len(p), nil }

func TestVectorNegativesAreRejected(t *testing.T) {
	f := loadVectors(t)
	sessions := map[string]*sessionVector{}
	for i := range f.Sessions {
		sessions[f.Sessions[i].Name] = &f.Sessions[i]
	}
	for _, n := range f.Negative {
		t.Run(n.Name, func(t *testing.T) {
			v := sessions[n.Session]
			in := bytes.NewReader(unhex(t, n.Inbound))
			var err error
			switch n.Role {
			case "device":
				err = replayDevice(t, v, &n, in)
			case "gateway":
				err = replayGateway(t, v, in)
			default:
				t.Fatalf("role %q", n.Role)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if got := Reason(err); got != n.Expect {
				t.Fatalf("rejected with %s (%v), want %s", got, err, n.Expect)
			}
		})
	}
}

func replayDevice(t *testing.T, v *sessionVector, n *negativeVector, in io.Reader) error {
	cfg := v.deviceConfig(t)
	if n.Class != "" {
		cfg.Class = n.Class
	}
	dc, err := NewDeviceConn(replayRW{in}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Handshake(nil); err != nil {
		return err
	}
	for {
		_, _, final, err := dc.Next()
		if err != nil || final {
			return err
		}
	}
}

func replayGateway(t *testing.T, v *sessionVector, in io.Reader) error {
	gc := NewGatewayConn(replayRW{in}, v.gatewayConfig(t))
	_, _, err := gc.Handshake(v.lookup(t), func(*Hello) (*Offer, error) { return v.offer(t), nil })
	if err != nil {
		return err
	}
	s := gc.Session()
	for !s.Done() {
		if _, err := s.AppendFrame(nil, bytes.NewReader(unhex(t, v.Image))); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	for {
		frame, err := ReadFrame(in, buf, ReportBody)
		if err != nil {
			return eofIsTruncated(err)
		}
		if _, err := s.ReadDeviceFrame(frame); err != nil {
			return err
		}
	}
}
