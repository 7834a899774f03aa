package protocol

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// halfConn is one direction of the record layer (PROTOCOL.md 5.3): a key, an IV and the next
// record counter. The nonce is IV XOR counter, built here and never read from the wire, so
// a (key, nonce) pair is used once; counters only ever grow, and the session ends before one
// would pass MaxCounter.
type halfConn struct {
	aead    cipher.AEAD
	iv      [IVSize]byte
	counter uint64
	nonce   [chacha20poly1305.NonceSize]byte
	aad     [HeaderSize + 4 + 4 + DigestSize]byte // largest associated data: a Final's
}

func newHalfConn(dk *directionKeys) (*halfConn, error) {
	aead, err := chacha20poly1305.New(dk.key[:])
	if err != nil {
		return nil, err
	}
	return &halfConn{aead: aead, iv: dk.iv}, nil
}

// next computes the nonce for the current counter and advances it.
func (h *halfConn) next() error {
	if h.counter > MaxCounter {
		return ErrCounterExhausted
	}
	h.nonce = h.iv
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], h.counter)
	for i := range c {
		h.nonce[IVSize-8+i] ^= c[i]
	}
	h.counter++
	return nil
}

// seal appends the ciphertext and tag of plain to dst, authenticated with header and extra
// as associated data. plain may alias the spare capacity of dst at len(dst) for in-place
// sealing.
func (h *halfConn) seal(dst, header, plain []byte, extra ...[]byte) ([]byte, error) {
	if err := h.next(); err != nil {
		return dst, err
	}
	return h.aead.Seal(dst, h.nonce[:], plain, h.assocData(header, extra)), nil
}

// sealFrame appends a whole sealed frame, header first, to dst. plain may alias the spare
// capacity of dst right after the header, at len(dst)+HeaderSize.
func (h *halfConn) sealFrame(dst []byte, typ byte, plain []byte, extra ...[]byte) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, typ, len(plain)+TagSize)
	return h.seal(dst, dst[start:start+HeaderSize], plain, extra...)
}

// open authenticates and decrypts sealed (ciphertext and tag) in place and returns the
// plaintext. The counter advances only when the tag verifies: an unauthenticated frame
// moves no state, and the caller ends the session on any error.
func (h *halfConn) open(header, sealed []byte, extra ...[]byte) ([]byte, error) {
	if len(sealed) < TagSize {
		return nil, fmt.Errorf("%w: %s body shorter than a tag", ErrMalformed, TypeName(header[0]))
	}
	saved := h.counter
	if err := h.next(); err != nil {
		return nil, err
	}
	plain, err := h.aead.Open(sealed[:0], h.nonce[:], sealed, h.assocData(header, extra))
	if err != nil {
		h.counter = saved
		return nil, fmt.Errorf("%w: %s record %d", ErrBadRecord, TypeName(header[0]), saved)
	}
	return plain, nil
}

// openFrame opens a frame whose whole body is sealed.
func (h *halfConn) openFrame(frame []byte, extra ...[]byte) ([]byte, error) {
	return h.open(frame[:HeaderSize], frame[HeaderSize:], extra...)
}

func (h *halfConn) assocData(header []byte, extra [][]byte) []byte {
	aad := append(h.aad[:0], header...)
	for _, e := range extra {
		aad = append(aad, e...)
	}
	return aad
}
