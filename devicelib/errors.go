package devicelib

import "errors"

// Errors a caller may act on, matched with errors.Is. Failures of the protocol itself wrap
// the protocol package's errors (protocol.ErrFlash, protocol.ErrDigestMismatch, ...).
var (
	// ErrNotErased: a Write would program bytes that are not erased (0xFF).
	ErrNotErased = errors.New("flash: write over bytes that are not erased")
	// ErrMisaligned: a Write offset or length is not a multiple of WordSize.
	ErrMisaligned = errors.New("flash: offset or length not word aligned")
	// ErrOutOfRange: an access past the end of the flash or a sector that does not exist.
	ErrOutOfRange = errors.New("flash: access out of range")

	// ErrNoState: the store holds no state yet (a factory-fresh device).
	ErrNoState = errors.New("no device state stored")
	// ErrCorruptState: the stored state fails its checksum or its checks. The device refuses
	// to run rather than start over, which would lower its anti-rollback floor.
	ErrCorruptState = errors.New("device state is corrupted")
	// ErrStateMismatch: the stored state belongs to another device class or a larger slot.
	ErrStateMismatch = errors.New("device state does not match the configuration")

	// ErrInUse: an Update or Reboot of this Device is already running.
	ErrInUse = errors.New("device busy with another update or reboot")
	// ErrBootCounterExhausted: the 32-bit boot counter is used up; the device needs a new
	// key before it may start another session (a repeated counter could repeat a nonce).
	ErrBootCounterExhausted = errors.New("boot counter exhausted")
)
