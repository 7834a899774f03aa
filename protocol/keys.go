package protocol

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
)

// Key schedule (PROTOCOL.md 5). HKDF-SHA256 throughout, labels prefixed "fotagate v1 ".

const (
	labelMAC1 = "fotagate v1 mac1"
	labelG2D  = "fotagate v1 g2d"
	labelD2G  = "fotagate v1 d2g"
)

// mac1Key derives the key of a Hello's mac1 from the device's PSK and ID (PROTOCOL.md 5.1).
// It is the same for every session, so the gateway may cache it per device.
func mac1Key(psk *[KeySize]byte, deviceID string) [KeySize]byte {
	info := make([]byte, 0, len(labelMAC1)+1+MaxIDLen)
	info = append(info, labelMAC1...)
	info = append(info, byte(len(deviceID)))
	info = append(info, deviceID...)
	var k [KeySize]byte
	okm, err := hkdf.Key(sha256.New, psk[:], nil, string(info), KeySize)
	if err != nil {
		panic("protocol: hkdf: " + err.Error()) // only on an impossible length
	}
	copy(k[:], okm)
	return k
}

// computeMAC1 is HMAC-SHA256(mac1 key, Hello frame up to mac1), truncated to 16 bytes.
func computeMAC1(key *[KeySize]byte, msg []byte) [MACSize]byte {
	m := hmac.New(sha256.New, key[:])
	m.Write(msg)
	var sum [sha256.Size]byte
	var out [MACSize]byte
	copy(out[:], m.Sum(sum[:0]))
	return out
}

// directionKeys is one direction's traffic key and IV.
type directionKeys struct {
	key [KeySize]byte
	iv  [IVSize]byte
}

// sessionKeys are both directions' keys of one session.
type sessionKeys struct {
	g2d, d2g directionKeys
}

// deriveSessionKeys implements PROTOCOL.md 5.2:
//
//	PRK  = HKDF-Extract(salt = Nd || Ng, IKM = PSK)
//	info = label || version || suite || id_len || device ID || gw_len || gateway ID || TH
//	key || iv = HKDF-Expand(PRK, info, 44), once per direction with its own label
//
// The device's Nd and the gateway's Ng each make the keys fresh on their own, so neither
// side's weak RNG can make a key repeat. Direction, identities and transcript hash in the
// labels stop reflection, cross-device splicing and downgrade.
func deriveSessionKeys(psk *[KeySize]byte, nd, ng *[NonceSize]byte, deviceID, gatewayID string, th *[DigestSize]byte) sessionKeys {
	salt := make([]byte, 0, 2*NonceSize)
	salt = append(salt, nd[:]...)
	salt = append(salt, ng[:]...)
	prk, err := hkdf.Extract(sha256.New, psk[:], salt)
	if err != nil {
		panic("protocol: hkdf: " + err.Error())
	}
	var ks sessionKeys
	expand := func(label string, dk *directionKeys) {
		info := make([]byte, 0, len(labelG2D)+4+2*MaxIDLen+DigestSize)
		info = append(info, label...)
		info = append(info, Version1, SuiteChaChaPoly)
		info = append(info, byte(len(deviceID)))
		info = append(info, deviceID...)
		info = append(info, byte(len(gatewayID)))
		info = append(info, gatewayID...)
		info = append(info, th[:]...)
		okm, err := hkdf.Expand(sha256.New, prk, string(info), KeySize+IVSize)
		if err != nil {
			panic("protocol: hkdf: " + err.Error())
		}
		copy(dk.key[:], okm[:KeySize])
		copy(dk.iv[:], okm[KeySize:])
		clear(okm)
	}
	expand(labelG2D, &ks.g2d)
	expand(labelD2G, &ks.d2g)
	clear(prk)
	return ks
}

// transcriptHash is TH = SHA-256(Hello frame || Offer header || Ng || gw_len || gateway ID):
// every byte on the wire before the Offer's ciphertext (PROTOCOL.md 5.2).
func transcriptHash(hello, offerPrefix []byte) [DigestSize]byte {
	h := sha256.New()
	h.Write(hello)
	h.Write(offerPrefix)
	var th [DigestSize]byte
	h.Sum(th[:0])
	return th
}

// confirmHash is TH2 = SHA-256(TH || Offer ciphertext and tag), the associated data of the
// Accept: the device confirms the exact offer (manifest included) it answers.
func confirmHash(th *[DigestSize]byte, sealedOffer []byte) [DigestSize]byte {
	h := sha256.New()
	h.Write(th[:])
	h.Write(sealedOffer)
	var th2 [DigestSize]byte
	h.Sum(th2[:0])
	return th2
}
