package protocol

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
)

// Manifest tells the device what it is offered (PROTOCOL.md 4.3). It travels sealed inside
// the Offer, so the gateway vouches for every field; Signature, when present, is the vendor's
// Ed25519 signature over the ImageStatement, so a device holding the vendor key need not
// trust the gateway for the image itself.
//
//	seq u32 | size u32 | chunk u16 | class_len u8 | class | sha256 [32] | flags u8 | [sig 64]
type Manifest struct {
	Seq       uint32
	Size      uint32
	Chunk     uint16 // payload of every data frame but the last
	Class     string
	Digest    [DigestSize]byte
	Signed    bool
	Signature [SignatureSize]byte
}

// Statement returns the vendor-signed part of the manifest.
func (m *Manifest) Statement() ImageStatement {
	return ImageStatement{Class: m.Class, Seq: m.Seq, Size: m.Size, Digest: m.Digest}
}

// VerifySignature checks the vendor signature against any of keys.
func (m *Manifest) VerifySignature(keys []ed25519.PublicKey) bool {
	if !m.Signed {
		return false
	}
	st := m.Statement()
	for _, k := range keys {
		if st.Verify(k, m.Signature[:]) {
			return true
		}
	}
	return false
}

func (m *Manifest) check() error {
	if err := CheckClass(m.Class); err != nil {
		return err
	}
	if m.Size == 0 {
		return fmt.Errorf("%w: manifest size is zero", ErrMalformed)
	}
	if m.Chunk < MinPayload || m.Chunk > MaxPayload {
		return fmt.Errorf("%w: manifest chunk %d outside %d..%d", ErrBadChunk, m.Chunk, MinPayload, MaxPayload)
	}
	return nil
}

// Append appends the encoded manifest to b.
func (m *Manifest) Append(b []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	b = binary.BigEndian.AppendUint32(b, m.Size)
	b = binary.BigEndian.AppendUint16(b, m.Chunk)
	b = append(b, byte(len(m.Class)))
	b = append(b, m.Class...)
	b = append(b, m.Digest[:]...)
	if !m.Signed {
		return append(b, 0), nil
	}
	b = append(b, FlagSigned)
	return append(b, m.Signature[:]...), nil
}

// parseManifest decodes an encoded manifest that must fill p exactly.
func parseManifest(p []byte) (*Manifest, error) {
	if len(p) < manifestFixed+1 {
		return nil, fmt.Errorf("%w: manifest of %d bytes", ErrMalformed, len(p))
	}
	m := &Manifest{
		Seq:   binary.BigEndian.Uint32(p),
		Size:  binary.BigEndian.Uint32(p[4:]),
		Chunk: binary.BigEndian.Uint16(p[8:]),
	}
	classLen := int(p[10])
	if classLen == 0 || classLen > MaxClassLen || len(p) < manifestFixed+classLen {
		return nil, fmt.Errorf("%w: manifest class_len %d", ErrMalformed, classLen)
	}
	m.Class = string(p[11 : 11+classLen])
	p = p[11+classLen:]
	copy(m.Digest[:], p)
	flags := p[DigestSize]
	p = p[DigestSize+1:]
	if flags&^FlagSigned != 0 {
		return nil, fmt.Errorf("%w: manifest flags %#02x set reserved bits", ErrMalformed, flags)
	}
	if flags&FlagSigned != 0 {
		if len(p) != SignatureSize {
			return nil, fmt.Errorf("%w: signed manifest with %d signature bytes", ErrMalformed, len(p))
		}
		m.Signed = true
		copy(m.Signature[:], p)
	} else if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing manifest bytes", ErrMalformed, len(p))
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Offer is the sealed content of the gateway's Offer (PROTOCOL.md 4.2).
type Offer struct {
	Status     byte      // StatusOffer, StatusUpToDate or StatusRetry
	Manifest   *Manifest // with StatusOffer
	RetryAfter uint16    // seconds, with StatusRetry
	GatewayID  string    // from the Offer's clear part; bound into the keys
}

func (o *Offer) appendPlain(b []byte) ([]byte, error) {
	b = append(b, o.Status)
	switch o.Status {
	case StatusOffer:
		if o.Manifest == nil {
			return b, fmt.Errorf("%w: offer without a manifest", ErrMalformed)
		}
		return o.Manifest.Append(b)
	case StatusUpToDate:
		return b, nil
	case StatusRetry:
		return binary.BigEndian.AppendUint16(b, o.RetryAfter), nil
	}
	return b, fmt.Errorf("%w: offer status %#02x", ErrMalformed, o.Status)
}

func parseOfferPlain(p []byte) (*Offer, error) {
	if len(p) < 1 {
		return nil, fmt.Errorf("%w: empty offer", ErrMalformed)
	}
	o := &Offer{Status: p[0]}
	p = p[1:]
	switch o.Status {
	case StatusOffer:
		m, err := parseManifest(p)
		if err != nil {
			return nil, err
		}
		o.Manifest = m
	case StatusUpToDate:
		if len(p) != 0 {
			return nil, fmt.Errorf("%w: up-to-date offer with %d extra bytes", ErrMalformed, len(p))
		}
	case StatusRetry:
		if len(p) != 2 {
			return nil, fmt.Errorf("%w: retry offer of %d bytes", ErrMalformed, len(p))
		}
		o.RetryAfter = binary.BigEndian.Uint16(p)
	default:
		return nil, fmt.Errorf("%w: offer status %#02x", ErrMalformed, o.Status)
	}
	return o, nil
}
