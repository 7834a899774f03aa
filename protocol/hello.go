package protocol

import (
	"encoding/binary"
	"fmt"
)

// Hello is the device's first message (PROTOCOL.md 4.1), sent in the clear:
//
//	version u8 | suite u8 | id_len u8 | device ID | Nd [16] | running_seq u32 |
//	max_payload u16 | mac1 [16]
//
// mac1 proves (replayably) that the sender holds the device's key, so the gateway can drop
// garbage before spending anything on it; freshness comes from the Accept.
type Hello struct {
	Version    byte
	Suite      byte
	DeviceID   string
	Nd         [NonceSize]byte
	Running    uint32 // sequence number of the image the device runs
	MaxPayload uint16 // largest data-frame payload the device accepts
	MAC1       [MACSize]byte
}

// appendUnauthenticated appends the Hello frame up to, not including, mac1.
func (m *Hello) appendUnauthenticated(b []byte) []byte {
	b = appendHeader(b, TypeHello, helloFixed+len(m.DeviceID))
	b = append(b, m.Version, m.Suite, byte(len(m.DeviceID)))
	b = append(b, m.DeviceID...)
	b = append(b, m.Nd[:]...)
	b = binary.BigEndian.AppendUint32(b, m.Running)
	return binary.BigEndian.AppendUint16(b, m.MaxPayload)
}

// Append appends the whole Hello frame, mac1 included, to b.
func (m *Hello) Append(b []byte) []byte {
	return append(m.appendUnauthenticated(b), m.MAC1[:]...)
}

// ParseHello decodes a Hello frame. It checks syntax and limits only; mac1 is checked by the
// gateway handshake. The version and suite are checked before anything else, so a future
// device is told "unsupported version" instead of "malformed".
func ParseHello(frame []byte) (*Hello, error) {
	body, err := splitFrame(frame, TypeHello)
	if err != nil {
		return nil, err
	}
	if len(body) < 2 {
		return nil, fmt.Errorf("%w: Hello of %d bytes", ErrMalformed, len(body))
	}
	m := &Hello{Version: body[0], Suite: body[1]}
	if m.Version != Version1 {
		return m, fmt.Errorf("%w: device speaks version %d, gateway speaks %d", ErrUnsupportedVersion, m.Version, Version1)
	}
	if m.Suite != SuiteChaChaPoly {
		return m, fmt.Errorf("%w: suite %#02x", ErrUnsupportedSuite, m.Suite)
	}
	if len(body) < MinHelloBody || len(body) > MaxHelloBody {
		return nil, fmt.Errorf("%w: Hello body of %d bytes, want %d to %d", ErrMalformed, len(body), MinHelloBody, MaxHelloBody)
	}
	idLen := int(body[2])
	if len(body) != helloFixed+idLen {
		return nil, fmt.Errorf("%w: Hello with id_len %d has %d body bytes", ErrMalformed, idLen, len(body))
	}
	p := body[3:]
	m.DeviceID = string(p[:idLen])
	if err := CheckDeviceID(m.DeviceID); err != nil {
		return nil, err
	}
	p = p[idLen:]
	copy(m.Nd[:], p)
	p = p[NonceSize:]
	m.Running = binary.BigEndian.Uint32(p)
	m.MaxPayload = binary.BigEndian.Uint16(p[4:])
	copy(m.MAC1[:], p[6:])
	if m.MaxPayload < MinPayload || m.MaxPayload > MaxPayload {
		return nil, fmt.Errorf("%w: max_payload %d outside %d..%d", ErrBadChunk, m.MaxPayload, MinPayload, MaxPayload)
	}
	return m, nil
}
