package protocol

import (
	"encoding/binary"
	"fmt"
)

// Hello is the device's first message (PROTOCOL.md 4.1), sent in the clear:
//
//	version u8 | suite u8 | id_len u8 | device ID | Nd [16] | running_seq u32 |
//	max_payload u16 | resume_offset u32 | resume_id [8] | mac1 [16]
//
// mac1 proves (replayably) that the sender holds the device's key, so the gateway can drop
// garbage before spending anything on it; freshness comes from the Accept. The resume point
// lets the gateway start the stream right behind the Offer (ResumeStart).
type Hello struct {
	Version      byte
	Suite        byte
	DeviceID     string
	Nd           [NonceSize]byte
	Running      uint32 // sequence number of the image the device runs
	MaxPayload   uint16 // largest data-frame payload the device accepts
	ResumeOffset uint32 // bytes of the image named by ResumeID already durable; 0: none
	ResumeID     [ResumeIDSize]byte
	MAC1         [MACSize]byte
}

// ResumeStart is the offset a session streams from (PROTOCOL.md 4.1): the Hello's resume
// offset when the offered image is the one the device named and the offset lies within it,
// otherwise 0. Gateway and device both compute it, so the gateway need not wait for the
// Accept to know where to start.
func ResumeStart(h *Hello, m *Manifest) uint32 { return resumeStart(h.ResumeOffset, h.ResumeID, m) }

func resumeStart(offset uint32, id [ResumeIDSize]byte, m *Manifest) uint32 {
	if offset == 0 || offset > m.Size || [ResumeIDSize]byte(m.Digest[:ResumeIDSize]) != id {
		return 0
	}
	return offset
}

// id is what a Hello names the resume point's image by.
func (r *ResumePoint) id() [ResumeIDSize]byte { return [ResumeIDSize]byte(r.Digest[:ResumeIDSize]) }

// appendUnauthenticated appends the Hello frame up to, not including, mac1.
func (m *Hello) appendUnauthenticated(b []byte) []byte {
	b = appendHeader(b, TypeHello, helloFixed+len(m.DeviceID))
	b = append(b, m.Version, m.Suite, byte(len(m.DeviceID)))
	b = append(b, m.DeviceID...)
	b = append(b, m.Nd[:]...)
	b = binary.BigEndian.AppendUint32(b, m.Running)
	b = binary.BigEndian.AppendUint16(b, m.MaxPayload)
	b = binary.BigEndian.AppendUint32(b, m.ResumeOffset)
	return append(b, m.ResumeID[:]...)
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
	m.ResumeOffset = binary.BigEndian.Uint32(p[6:])
	copy(m.ResumeID[:], p[10:])
	copy(m.MAC1[:], p[10+ResumeIDSize:])
	if m.MaxPayload < MinPayload || m.MaxPayload > MaxPayload {
		return nil, fmt.Errorf("%w: max_payload %d outside %d..%d", ErrBadChunk, m.MaxPayload, MinPayload, MaxPayload)
	}
	return m, nil
}
