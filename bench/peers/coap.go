package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"time"

	"github.com/pion/dtls/v3"
	dtlsnet "github.com/pion/dtls/v3/pkg/net"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	dtlsserver "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapnet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/pkg/runner/periodic"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// CoAP is a CoAP GET with Block2 (RFC 7959) over DTLS 1.2 with a pre-shared key and
// TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 (RFC 7905), the same AEAD as fotagate, using
// plgd-dev/go-coap and pion/dtls. The chunk is the block size, which the device asks for in
// every request (early negotiation, RFC 7959 2.4). Block2 is stop and wait: the device asks
// for each block with a confirmable GET and gets it in the piggybacked answer, so every block
// costs a round trip. The server is go-coap's, with its blockwise layer.
type CoAP struct{}

func (CoAP) Name() string    { return "coap-dtls" }
func (CoAP) Network() string { return "udp" }
func (CoAP) About() string {
	return "CoAP Block2 GET over DTLS 1.2 PSK (ChaCha20-Poly1305), go-coap + pion/dtls; chunk = block size, one block per round trip"
}
func (CoAP) ClientEnv() []string { return nil }

// OneBlockPerRoundTrip marks CoAP as StopAndWait: the device asks for each block when it has
// the previous one.
func (CoAP) OneBlockPerRoundTrip() {}

func (CoAP) Check(chunk int) error {
	if chunk < 16 || chunk > 1024 || bits.OnesCount(uint(chunk)) != 1 {
		return fmt.Errorf("%w: Block2 sizes are 2^(4+SZX) = 16..1024 bytes; SZX 7 is reserved "+
			"(BERT, RFC 8323, exists only for CoAP over TCP)", ErrChunkUnsupported)
	}
	return nil
}

func szx(chunk int) blockwise.SZX { return blockwise.SZX(bits.TrailingZeros(uint(chunk)) - 4) }

// What a device needs to hold one block's datagram (computed): the DTLS 1.2 record header and
// the Poly1305 tag (no explicit nonce with ChaCha20, RFC 7905), and the CoAP header, the 8-byte
// token go-coap uses, the Block2, Content-Format and Size2 options and the payload marker.
const (
	dtlsRecordOverhead = 13 + 16
	coapMsgOverhead    = 4 + 8 + 4 + 2 + 4 + 1
)

func (CoAP) DeviceRAM(chunk int) RAM {
	return RAM{Bytes: chunk + dtlsRecordOverhead + coapMsgOverhead,
		How: "one datagram: block + DTLS record 29 + CoAP header, token and options 23; + DTLS session state (not counted: no ESP8266 DTLS size report)"}
}

type coapServer struct {
	srv *dtlsserver.Server
	ln  *packetListener
}

// coapListener adapts a net.Listener to what go-coap's DTLS server accepts from. go-coap
// retries every Accept error but its own "closed" one, so a closed listener must say that.
type coapListener struct{ net.Listener }

func (l coapListener) AcceptWithContext(context.Context) (net.Conn, error) {
	c, err := l.Accept()
	if errors.Is(err, net.ErrClosed) {
		return nil, coapnet.ErrListenerIsClosed
	}
	return c, err
}

func (CoAP) Serve(addr string, img []byte, m *Meter) (Server, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	pl := newPacketListener(pc, m)
	dl, err := dtls.NewListenerWithOptions(pl,
		dtls.WithPSK(func(id []byte) ([]byte, error) {
			if string(id) != benchDevice {
				return nil, fmt.Errorf("coap: unknown identity %q", id)
			}
			return benchPSK[:], nil
		}),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256))
	if err != nil {
		pl.Close()
		return nil, err
	}
	handler := func(w *responsewriter.ResponseWriter[*udpclient.Conn], r *pool.Message) {
		if p, err := r.Path(); err != nil || p != "/fw" {
			w.SetResponse(codes.NotFound, message.TextPlain, nil) //nolint:errcheck // best effort
			return
		}
		m.Mark(w.Conn().RemoteAddr().String())
		w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(img)) //nolint:errcheck // shows at the device
	}
	srv := dtlsserver.New(
		options.WithHandlerFunc(udpclient.HandlerFunc(handler)),
		options.WithBlockwise(true, blockwise.SZX1024, time.Hour),
		// A lost close_notify leaves the session to this: generous, as retransmissions back off
		// to 2+4+8+16 s.
		options.WithInactivityMonitor(time.Minute, func(cc *udpclient.Conn) { cc.Close() }), //nolint:errcheck // closing anyway
	)
	go srv.Serve(coapListener{dl}) //nolint:errcheck // ends at Close
	return &coapServer{srv: srv, ln: pl}, nil
}

func (s *coapServer) Addr() string { return s.ln.Addr().String() }
func (s *coapServer) Info() string { return "" }
func (s *coapServer) Close() error {
	s.srv.Stop()
	return s.ln.Close()
}

func (c CoAP) Fetch(ctx context.Context, f FetchConfig) (Fetched, error) {
	if err := c.Check(f.Chunk); err != nil {
		return Fetched{}, err
	}
	token, err := message.GetToken()
	if err != nil {
		return Fetched{}, err
	}
	start := time.Now()
	raddr, err := net.ResolveUDPAddr("udp", f.Addr)
	if err != nil {
		return Fetched{}, err
	}
	uc, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return Fetched{}, err
	}
	dc, err := dtls.ClientWithOptions(dtlsnet.PacketConnFromConn(uc), raddr,
		dtls.WithPSK(func([]byte) ([]byte, error) { return benchPSK[:], nil }),
		dtls.WithPSKIdentityHint([]byte(benchDevice)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256))
	if err != nil {
		uc.Close()
		return Fetched{}, err
	}
	var out Fetched
	if err := dc.HandshakeContext(ctx); err != nil {
		dc.Close()
		return Fetched{}, fmt.Errorf("coap: DTLS handshake: %w", err)
	}
	// The device asks for each block itself, as a microcontroller's CoAP client does: go-coap's
	// own Block2 follow-up requests (v3.8.0) are not retransmitted when a datagram is lost,
	// while a request of its own is. Its retransmission timer runs every 100 ms rather than
	// every 4 s, so a loss costs about ACK_TIMEOUT (2-3 s, RFC 7252) as it should.
	//
	// One token for the whole transfer, as go-coap's own client keeps it: the server's
	// blockwise layer then serves every block from the response it cached for that token,
	// where a fresh token per block would make it run the handler and cache the body again.
	cc := coapdtls.Client(dc, options.WithBlockwise(false, szx(f.Chunk), time.Hour), options.WithCloseSocket(),
		options.WithPeriodicRunner(periodic.New(ctx.Done(), 100*time.Millisecond)),
		options.WithGetToken(func() (message.Token, error) { return token, nil }))
	defer cc.Close()
	img := newSink(f, f.ImageSize)
	for num := int64(0); ; num++ {
		block, err := blockwise.EncodeBlockOption(szx(f.Chunk), num, false)
		if err != nil {
			return Fetched{}, err
		}
		resp, err := cc.Get(ctx, "/fw", message.Option{ID: message.Block2, Value: encodeUint(block)})
		if err != nil {
			return Fetched{}, fmt.Errorf("coap: GET block %d: %w", num, err)
		}
		if resp.Code() != codes.Content {
			return Fetched{}, fmt.Errorf("coap: GET block %d answered %v", num, resp.Code())
		}
		v, err := resp.GetOptionUint32(message.Block2)
		if err != nil {
			return Fetched{}, fmt.Errorf("coap: block %d answered without Block2: %w", num, err)
		}
		gotSZX, gotNum, more, err := blockwise.DecodeBlockOption(v)
		if err != nil || gotSZX != szx(f.Chunk) || gotNum != num {
			return Fetched{}, fmt.Errorf("coap: asked for block %d of %d B, got %d of %d B (%v)", num, f.Chunk, gotNum, gotSZX.Size(), err)
		}
		payload, err := resp.ReadBody()
		if err != nil {
			return Fetched{}, err
		}
		if num == 0 {
			out.FirstByte = time.Since(start)
		}
		img.write(payload)
		// A budget stops after whole blocks, as a device that had to stop would; its flash
		// writes up to there are waited for, like the whole image's.
		stop := f.Budget > 0 && len(img.img) >= f.Budget && more
		if !more || stop {
			out.Image = img.finish()
			out.Elapsed = time.Since(start)
			out.Stopped = stop
			return out, nil
		}
	}
}

// encodeUint is CoAP's uint option encoding: big-endian without leading zero bytes.
func encodeUint(v uint32) []byte {
	var b [4]byte
	n, _ := message.EncodeUint32(b[:], v)
	return b[:n]
}
