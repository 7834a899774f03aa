package peers

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// TCP is the floor: no security at all. The device sends its chunk size (two bytes), the
// server answers with the image in chunk-sized writes (one write syscall each, TCP_NODELAY as Go
// sets it) and half-closes; the device reads in chunk-sized reads until EOF.
type TCP struct{}

func (TCP) Name() string    { return "tcp" }
func (TCP) Network() string { return "tcp" }
func (TCP) About() string {
	return "plain TCP, no security: the floor; chunk = the server's write size and the device's read size"
}
func (TCP) ClientEnv() []string { return nil }

func (TCP) Check(chunk int) error {
	if chunk < 1 || chunk > 65535 {
		return fmt.Errorf("%w: the request carries a u16", ErrChunkUnsupported)
	}
	return nil
}

func (TCP) DeviceRAM(chunk int) RAM {
	return RAM{Bytes: chunk, How: "one chunk-sized read buffer (no security, no framing)"}
}

type tcpServer struct{ ln net.Listener }

func (TCP) Serve(addr string, img []byte, m *Meter) (Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	counted := m.Listener(ln)
	go func() {
		for {
			c, err := counted.Accept()
			if err != nil {
				return
			}
			go serveTCP(c, img, m)
		}
	}()
	return &tcpServer{ln}, nil
}

func serveTCP(c net.Conn, img []byte, m *Meter) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Hour)) //nolint:errcheck // shows as an I/O error
	var req [2]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	chunk := int(binary.BigEndian.Uint16(req[:]))
	if chunk == 0 {
		return
	}
	m.Mark(c.RemoteAddr().String())
	for off := 0; off < len(img); off += chunk {
		if _, err := c.Write(img[off:min(off+chunk, len(img))]); err != nil {
			return
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() //nolint:errcheck // the device sees EOF or an error either way
	}
	io.Copy(io.Discard, c) //nolint:errcheck // wait for the device to close
}

func (s *tcpServer) Addr() string { return s.ln.Addr().String() }
func (s *tcpServer) Info() string { return "" }
func (s *tcpServer) Close() error { return s.ln.Close() }

func (TCP) Fetch(ctx context.Context, f FetchConfig) (Fetched, error) {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", f.Addr)
	if err != nil {
		return Fetched{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) }) //nolint:errcheck // shows as an I/O error
	defer stop()
	if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(f.Chunk))); err != nil {
		return Fetched{}, err
	}
	var out Fetched
	buf := make([]byte, f.Chunk)
	img := newSink(f, f.ImageSize)
	for {
		n, err := c.Read(buf)
		if n > 0 && out.FirstByte == 0 {
			out.FirstByte = time.Since(start)
		}
		img.write(buf[:n])
		if err == io.EOF {
			out.Image = img.finish()
			out.Elapsed = time.Since(start)
			return out, nil
		}
		if err != nil {
			return Fetched{}, err
		}
	}
}
