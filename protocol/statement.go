package protocol

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
)

// statementContext starts every vendor image statement, so an Ed25519 signature made for
// fotagate images can never be mistaken for a signature over anything else (PROTOCOL.md 7.2).
const statementContext = "fotagate image v1\x00"

// StatementSize is the largest encoded image statement.
const StatementSize = len(statementContext) + 1 + MaxClassLen + 4 + 4 + DigestSize

// ImageStatement is what a vendor signs with Ed25519 and what a device that verifies vendor
// signatures checks: the device class, the sequence number, the size and the SHA-256 of one
// image. It is deliberately tiny and binary so a microcontroller can rebuild it byte for byte.
type ImageStatement struct {
	Class  string
	Seq    uint32
	Size   uint32
	Digest [DigestSize]byte
}

// Append appends the canonical encoding of s to b (PROTOCOL.md 7.2):
//
//	"fotagate image v1" 0x00 | class_len u8 | class | seq u32 | size u32 | sha256 [32]
func (s *ImageStatement) Append(b []byte) ([]byte, error) {
	if err := CheckClass(s.Class); err != nil {
		return b, err
	}
	if s.Size == 0 {
		return b, fmt.Errorf("%w: image size is zero", ErrMalformed)
	}
	b = append(b, statementContext...)
	b = append(b, byte(len(s.Class)))
	b = append(b, s.Class...)
	b = binary.BigEndian.AppendUint32(b, s.Seq)
	b = binary.BigEndian.AppendUint32(b, s.Size)
	return append(b, s.Digest[:]...), nil
}

// Sign signs the statement with a vendor key.
func (s *ImageStatement) Sign(key ed25519.PrivateKey) ([SignatureSize]byte, error) {
	var sig [SignatureSize]byte
	msg, err := s.Append(make([]byte, 0, StatementSize))
	if err != nil {
		return sig, err
	}
	copy(sig[:], ed25519.Sign(key, msg))
	return sig, nil
}

// Verify reports whether sig is a valid vendor signature over the statement.
func (s *ImageStatement) Verify(pub ed25519.PublicKey, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != SignatureSize {
		return false
	}
	msg, err := s.Append(make([]byte, 0, StatementSize))
	if err != nil {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}
