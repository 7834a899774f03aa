package protocol

// Every size, limit and code of the protocol, named as PROTOCOL.md names them. Section numbers
// refer to that file.

// Version and suite (PROTOCOL.md 2). Both are bound into the transcript and every key label,
// so an attacker cannot downgrade either without failing the handshake.
const (
	Version1 = 0x01
	// SuiteChaChaPoly is ChaCha20-Poly1305 (RFC 8439) with HKDF-SHA256 (RFC 5869) and SHA-256.
	SuiteChaChaPoly = 0x01
)

// Frame header (PROTOCOL.md 3): type u8 | body length u16 big-endian.
const HeaderSize = 3

// Message types (PROTOCOL.md 3.2).
const (
	TypeHello  = 0x01 // device -> gateway, plaintext with mac1
	TypeOffer  = 0x02 // gateway -> device, nonce, gateway ID, sealed offer
	TypeAccept = 0x03 // device -> gateway, sealed decision and resume offset
	TypeData   = 0x04 // gateway -> device, sealed chunk
	TypeFinal  = 0x05 // gateway -> device, sealed last chunk; binds size and digest
	TypeAck    = 0x06 // device -> gateway, sealed durable offset
	TypeReport = 0x07 // device -> gateway, sealed result of verification
	TypeAlert  = 0x08 // either way after the handshake, sealed error code
	TypeReject = 0x09 // gateway -> device in answer to Hello, plaintext error code
)

// Sizes of fixed fields (PROTOCOL.md 3.1).
const (
	NonceSize     = 16 // Nd and Ng
	MACSize       = 16 // mac1, truncated HMAC-SHA256
	TagSize       = 16 // Poly1305 tag
	KeySize       = 32 // PSK and traffic keys
	IVSize        = 12 // per-direction IV, XORed with the record counter
	DigestSize    = 32 // SHA-256
	SignatureSize = 64 // Ed25519
	MaxIDLen      = 16 // device and gateway IDs
	MaxClassLen   = 16 // device class
)

// Chunk (frame payload) limits (PROTOCOL.md 3.3). The device announces its maximum; the
// gateway never sends more.
const (
	MinPayload = 64
	MaxPayload = 4096
)

// DataOverhead is what each data frame adds to its payload on the wire: header and tag.
// Index and offset are derived by both sides, never sent (PROTOCOL.md 5.2).
const DataOverhead = HeaderSize + TagSize

// Body sizes of the handshake messages (PROTOCOL.md 4).
const (
	// Hello: version | suite | id_len | id | Nd | running_seq u32 | max_payload u16 |
	// resume_offset u32 | resume_id [8] | mac1
	helloFixed   = 1 + 1 + 1 + NonceSize + 4 + 2 + 4 + ResumeIDSize + MACSize
	MaxHelloBody = helloFixed + MaxIDLen
	MinHelloBody = helloFixed + 1

	// Manifest: seq u32 | size u32 | chunk u16 | class_len | class | digest | flags | [sig]
	manifestFixed   = 4 + 4 + 2 + 1 + DigestSize + 1
	MaxManifestSize = manifestFixed + MaxClassLen + SignatureSize

	// Offer plaintext: status | (manifest | retry_after u16)
	MaxOfferPlain = 1 + MaxManifestSize
	// Offer body: Ng | gw_len | gateway ID | sealed offer plaintext
	MaxOfferBody = NonceSize + 1 + MaxIDLen + MaxOfferPlain + TagSize

	// Accept plaintext: code | offset u32
	acceptPlain = 1 + 4
	AcceptBody  = acceptPlain + TagSize

	ackPlain    = 4     // durable offset u32
	reportPlain = 1 + 4 // result code | durable offset u32
	alertPlain  = 1     // code
	AckBody     = ackPlain + TagSize
	ReportBody  = reportPlain + TagSize
	AlertBody   = alertPlain + TagSize
	RejectBody  = 1
)

// ResumeIDSize is how much of the SHA-256 of the image it holds part of a device names in its
// Hello (PROTOCOL.md 4.1): enough for the gateway to tell whether the image it offers is that
// one, so it can start streaming from the resume offset before the Accept. A false match only
// costs a session: the device checks the whole digest (9.1).
const ResumeIDSize = 8

// EarlyPayload is how many image bytes the gateway may send behind the Offer before it has
// opened the Accept (PROTOCOL.md 4.4): whole frames only, at least one. It puts the first
// image byte one round trip after the Hello instead of two, and bounds what a replayed Hello
// makes the gateway send (sealed under fresh keys nobody but the device can derive).
const EarlyPayload = 16384

// EarlyFrames is how many frames the gateway may send before the Accept at a given chunk.
func EarlyFrames(chunk int) int { return max(1, EarlyPayload/chunk) }

// FrameBufferSize is the one receive buffer a device needs for a given maximum payload: it
// must hold the largest Offer as well as the largest data frame (PROTOCOL.md 3.3).
func FrameBufferSize(maxPayload int) int {
	return max(HeaderSize+maxPayload+TagSize, HeaderSize+MaxOfferBody)
}

// Offer status (PROTOCOL.md 4.2).
const (
	StatusOffer    = 0x00 // a manifest follows: an update is available
	StatusUpToDate = 0x01 // nothing newer for this device
	StatusRetry    = 0x02 // the gateway is fetching; retry_after u16 seconds follows
)

// Manifest flags (PROTOCOL.md 4.3). Reserved bits must be zero.
const FlagSigned = 0x01

// MaxCounter is the last record counter a direction may use. 32-bit devices keep counters in
// a uint32; a session that would need more ends with ErrCounterExhausted (PROTOCOL.md 5.3).
const MaxCounter = 1<<32 - 1

// Codes carried by Accept, Report, Alert and Reject (PROTOCOL.md 6). Zero is success.
const (
	CodeOK                 = 0x00
	CodeAuthFailed         = 0x01 // unknown device or wrong key: deliberately one code
	CodeUnsupportedVersion = 0x02
	CodeBusy               = 0x03
	CodeMalformed          = 0x04
	CodeRollback           = 0x05
	CodeWrongClass         = 0x06
	CodeTooLarge           = 0x07
	CodeBadSignature       = 0x08
	CodeDigestMismatch     = 0x09
	CodeFlashError         = 0x0a
	CodeUnavailable        = 0x0b
	CodeTimeout            = 0x0c
	CodeBadChunk           = 0x0d
	CodeUnsupportedSuite   = 0x0e
	CodeDeclined           = 0x0f // device does not want the offer now (or nothing was offered)
)
