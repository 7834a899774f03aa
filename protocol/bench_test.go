package protocol_test

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/fotagate/fotagate/protocol"
)

// Benchmarks of the data path against a bare ChaCha20-Poly1305 baseline in the same run, and
// of the handshake. Read them as ratios: BenchmarkSealFrame/chunk=N against
// BenchmarkBareSeal/chunk=N is what the record layer (header, counter nonce, associated data,
// reading the image) costs on top of the AEAD itself. The data path must not allocate.
//
//	go test -run '^$' -bench . -benchmem -cpu 1 -count 3 ./protocol

var benchChunks = []int{64, 256, 512, 1024, 4096}

// benchImageSize is large enough that a session lasts thousands of frames at every chunk, so
// the handshakes run between sessions (outside the timer) are rare.
const benchImageSize = 4 << 20

// benchSession runs a deterministic handshake for a gateway capped at chunk. Every call
// yields the same keys (the helpers seed their nonces), so frames sealed for one session open
// in the next.
func benchSession(b *testing.B, chunk int, m *protocol.Manifest) (*protocol.DeviceSession, *protocol.GatewaySession) {
	b.Helper()
	return memHandshake(b, deviceConfig(protocol.MaxPayload), gatewayConfig(b, chunk), m, 0)
}

func BenchmarkSealFrame(b *testing.B) {
	img := randomImage(benchImageSize, 4)
	m := manifestFor(img, 2)
	for _, chunk := range benchChunks {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			r := bytes.NewReader(img)
			_, gs := benchSession(b, chunk, m)
			buf := make([]byte, 0, chunk+protocol.DataOverhead)
			b.SetBytes(int64(chunk))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if gs.Done() {
					b.StopTimer()
					_, gs = benchSession(b, chunk, m)
					b.StartTimer()
				}
				out, err := gs.AppendFrame(buf[:0], r)
				if err != nil {
					b.Fatal(err)
				}
				if len(out) > cap(buf) {
					b.Fatalf("frame of %d bytes outgrew the %d-byte buffer", len(out), cap(buf))
				}
			}
		})
	}
}

func BenchmarkOpenFrame(b *testing.B) {
	img := randomImage(benchImageSize, 4)
	m := manifestFor(img, 2)
	for _, chunk := range benchChunks {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			ds, gs := benchSession(b, chunk, m)
			sealed := frames(b, gs, img)
			// OpenData decrypts in place, so each frame is copied into one reused buffer
			// first, as a device's receive buffer would be filled from the wire.
			buf := make([]byte, chunk+protocol.DataOverhead)
			next := 0
			b.SetBytes(int64(chunk))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if next == len(sealed) {
					b.StopTimer()
					ds, _ = benchSession(b, chunk, m)
					next = 0
					b.StartTimer()
				}
				f := sealed[next]
				next++
				n := copy(buf, f)
				if _, _, err := ds.OpenData(buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareSeal is the baseline: the AEAD alone, sealing chunk bytes into a reused
// buffer with no header, counter or associated data.
func BenchmarkBareSeal(b *testing.B) {
	for _, chunk := range benchChunks {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, chacha20poly1305.NonceSize)
			p := randomImage(chunk, 5)
			dst := make([]byte, 0, chunk+chacha20poly1305.Overhead)
			b.SetBytes(int64(chunk))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				dst = aead.Seal(dst[:0], nonce, p, nil)
			}
		})
	}
}

// BenchmarkBareOpen is the baseline of BenchmarkOpenFrame, copy included.
func BenchmarkBareOpen(b *testing.B) {
	for _, chunk := range benchChunks {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, chacha20poly1305.NonceSize)
			sealed := aead.Seal(nil, nonce, randomImage(chunk, 5), nil)
			buf := make([]byte, len(sealed))
			b.SetBytes(int64(chunk))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				n := copy(buf, sealed)
				if _, err := aead.Open(buf[:0], nonce, buf[:n], nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake runs both roles of a whole handshake per iteration, nonces from a
// seeded ChaCha8 so the random source costs next to nothing.
func BenchmarkHandshake(b *testing.B) {
	dc := deviceConfig(1024)
	gc := gatewayConfig(b, protocol.MaxPayload)
	lookup := lookupOne(dc.DeviceID, dc.PSK)
	offer := &protocol.Offer{Status: protocol.StatusOffer, Manifest: manifestFor(randomImage(1000, 6), 2)}
	offerBuf := make([]byte, 0, protocol.HeaderSize+protocol.MaxOfferBody)
	acceptBuf := make([]byte, 0, protocol.HeaderSize+protocol.AcceptBody)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		dh, err := protocol.NewDeviceHandshake(dc)
		if err != nil {
			b.Fatal(err)
		}
		gh := protocol.NewGatewayHandshake(gc)
		if _, err := gh.ReadHello(dh.Hello(), lookup); err != nil {
			b.Fatal(err)
		}
		o, err := gh.AppendOffer(offerBuf[:0], offer)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dh.ReadOffer(o); err != nil {
			b.Fatal(err)
		}
		a, ds, err := dh.AppendAccept(acceptBuf[:0], protocol.CodeOK, 0)
		if err != nil || ds == nil {
			b.Fatal(err)
		}
		if _, gs, err := gh.ReadAccept(a); err != nil || gs == nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

// cycleReader serves the same bytes over and over: the gateway's nonces in
// BenchmarkGatewayHandshake, so the device's answers can be computed before the timer starts.
type cycleReader struct {
	b   []byte
	off int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b[r.off]
		r.off = (r.off + 1) % len(r.b)
	}
	return len(p), nil
}

// BenchmarkGatewayHandshake is the gateway's share of a handshake: ReadHello, AppendOffer and
// ReadAccept. The device's Hellos and Accepts come from a pool made beforehand, one per
// gateway nonce; the gateway draws its nonces from a cycle of the same length, so iteration i
// meets the Accept that answers its own Offer.
func BenchmarkGatewayHandshake(b *testing.B) {
	const pool = 16
	gc := gatewayConfig(b, protocol.MaxPayload)
	nonces := &cycleReader{b: randomImage(pool*protocol.NonceSize, 7)}
	gc.Rand = nonces
	offer := &protocol.Offer{Status: protocol.StatusOffer, Manifest: manifestFor(randomImage(1000, 6), 2)}
	type exchange struct {
		hello, accept []byte
		lookup        protocol.KeyLookup
	}
	var ex [pool]exchange
	for i := range ex {
		dc := deviceConfig(1024)
		dc.Rand = newSeeded(byte(10 + i))
		dh, err := protocol.NewDeviceHandshake(dc)
		if err != nil {
			b.Fatal(err)
		}
		gh := protocol.NewGatewayHandshake(gc)
		lookup := lookupOne(dc.DeviceID, dc.PSK)
		if _, err := gh.ReadHello(dh.Hello(), lookup); err != nil {
			b.Fatal(err)
		}
		o, err := gh.AppendOffer(nil, offer)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dh.ReadOffer(o); err != nil {
			b.Fatal(err)
		}
		a, _, err := dh.AppendAccept(nil, protocol.CodeOK, 0)
		if err != nil {
			b.Fatal(err)
		}
		ex[i] = exchange{hello: dh.Hello(), accept: a, lookup: lookup}
	}
	offerBuf := make([]byte, 0, protocol.HeaderSize+protocol.MaxOfferBody)
	acceptBuf := make([]byte, protocol.HeaderSize+protocol.AcceptBody)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e := &ex[i%pool]
		gh := protocol.NewGatewayHandshake(gc)
		if _, err := gh.ReadHello(e.hello, e.lookup); err != nil {
			b.Fatal(err)
		}
		if _, err := gh.AppendOffer(offerBuf[:0], offer); err != nil {
			b.Fatal(err)
		}
		n := copy(acceptBuf, e.accept) // ReadAccept decrypts in place
		if _, gs, err := gh.ReadAccept(acceptBuf[:n]); err != nil || gs == nil {
			b.Fatalf("iteration %d: %v", i, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}
