package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame layout (PROTOCOL.md 3): type u8 | length u16 big-endian | body [length].
// The header is authenticated as associated data of every sealed frame, so a flipped type or
// length fails the tag.

func appendHeader(b []byte, typ byte, bodyLen int) []byte {
	return append(b, typ, byte(bodyLen>>8), byte(bodyLen))
}

// splitFrame checks that frame is one whole frame of type typ and returns its body.
func splitFrame(frame []byte, typ byte) ([]byte, error) {
	if len(frame) < HeaderSize {
		return nil, fmt.Errorf("%w: frame shorter than its header", ErrMalformed)
	}
	if frame[0] != typ {
		return nil, fmt.Errorf("%w: got %s, want %s", ErrUnexpectedMessage, TypeName(frame[0]), TypeName(typ))
	}
	if n := int(binary.BigEndian.Uint16(frame[1:3])); n != len(frame)-HeaderSize {
		return nil, fmt.Errorf("%w: header says %d body bytes, frame has %d", ErrMalformed, n, len(frame)-HeaderSize)
	}
	return frame[HeaderSize:], nil
}

// TypeName is the spec's name of a message type, for errors and logs.
func TypeName(typ byte) string {
	switch typ {
	case TypeHello:
		return "Hello"
	case TypeOffer:
		return "Offer"
	case TypeAccept:
		return "Accept"
	case TypeData:
		return "Data"
	case TypeFinal:
		return "Final"
	case TypeAck:
		return "Ack"
	case TypeReport:
		return "Report"
	case TypeAlert:
		return "Alert"
	case TypeReject:
		return "Reject"
	}
	return fmt.Sprintf("type %#02x", typ)
}

// ReadFrame reads one frame from r into buf and returns it (header included), without
// allocating. The body length is checked against limit and against len(buf) before a single
// body byte is read, so a peer cannot make the reader copy or wait for more than it allows
// (PROTOCOL.md 3.1). A clean end of stream before a header is io.EOF; an end inside a frame
// wraps ErrTruncated.
func ReadFrame(r io.Reader, buf []byte, limit int) ([]byte, error) {
	if len(buf) < HeaderSize {
		return nil, fmt.Errorf("protocol: frame buffer of %d bytes is too small", len(buf))
	}
	if _, err := io.ReadFull(r, buf[:HeaderSize]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: inside a frame header", ErrTruncated)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf[1:3]))
	if n > limit || HeaderSize+n > len(buf) {
		return nil, fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrFrameTooLarge, TypeName(buf[0]), n, min(limit, len(buf)-HeaderSize))
	}
	if _, err := io.ReadFull(r, buf[HeaderSize:HeaderSize+n]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: inside a %s body", ErrTruncated, TypeName(buf[0]))
		}
		return nil, err
	}
	return buf[:HeaderSize+n], nil
}
