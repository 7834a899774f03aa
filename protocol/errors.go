package protocol

import (
	"errors"
	"fmt"
)

// Errors a caller may act on. Every error caused by what a peer sent wraps one of them, so
// callers match with errors.Is; messages add the detail. Errors of local misuse (a nil Rand,
// a buffer too small, an image that cannot be read) say so in plain words instead.
var (
	ErrMalformed          = errors.New("malformed message")
	ErrFrameTooLarge      = errors.New("frame length over limit")
	ErrUnexpectedMessage  = errors.New("unexpected message type")
	ErrAuthFailed         = errors.New("authentication failed (unknown device or wrong key)")
	ErrBadRecord          = errors.New("record authentication failed (tampered, replayed, reordered or dropped)")
	ErrTruncated          = errors.New("stream ended before the final frame")
	ErrCounterExhausted   = errors.New("record counter exhausted")
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
	ErrUnsupportedSuite   = errors.New("unsupported cipher suite")
	ErrRollback           = errors.New("offered sequence is lower than the running one")
	ErrWrongClass         = errors.New("offered image is for another device class")
	ErrTooLarge           = errors.New("offered image does not fit")
	ErrBadChunk           = errors.New("chunk size outside the announced limits")
	ErrBadSignature       = errors.New("vendor signature missing or invalid")
	ErrDigestMismatch     = errors.New("image digest mismatch")
	ErrBusy               = errors.New("peer busy")
	ErrUnavailable        = errors.New("image unavailable")
	ErrTimeout            = errors.New("peer timed out")
	ErrFlash              = errors.New("flash error")
	ErrDeclined           = errors.New("offer declined")
)

// codeErrors maps wire codes to the errors above, both ways.
var codeErrors = map[byte]error{
	CodeAuthFailed:         ErrAuthFailed,
	CodeUnsupportedVersion: ErrUnsupportedVersion,
	CodeBusy:               ErrBusy,
	CodeMalformed:          ErrMalformed,
	CodeRollback:           ErrRollback,
	CodeWrongClass:         ErrWrongClass,
	CodeTooLarge:           ErrTooLarge,
	CodeBadSignature:       ErrBadSignature,
	CodeDigestMismatch:     ErrDigestMismatch,
	CodeFlashError:         ErrFlash,
	CodeUnavailable:        ErrUnavailable,
	CodeTimeout:            ErrTimeout,
	CodeBadChunk:           ErrBadChunk,
	CodeUnsupportedSuite:   ErrUnsupportedSuite,
	CodeDeclined:           ErrDeclined,
}

// CodeFor returns the wire code that reports err to the peer; CodeMalformed when none fits.
func CodeFor(err error) byte {
	for code, e := range codeErrors {
		if errors.Is(err, e) {
			return code
		}
	}
	return CodeMalformed
}

// CodeName is the stable lower-case name of a code, as used in logs, metrics and vectors.
func CodeName(code byte) string {
	switch code {
	case CodeOK:
		return "ok"
	case CodeAuthFailed:
		return "auth_failed"
	case CodeUnsupportedVersion:
		return "unsupported_version"
	case CodeBusy:
		return "busy"
	case CodeMalformed:
		return "malformed"
	case CodeRollback:
		return "rollback"
	case CodeWrongClass:
		return "wrong_class"
	case CodeTooLarge:
		return "too_large"
	case CodeBadSignature:
		return "bad_signature"
	case CodeDigestMismatch:
		return "digest_mismatch"
	case CodeFlashError:
		return "flash_error"
	case CodeUnavailable:
		return "unavailable"
	case CodeTimeout:
		return "timeout"
	case CodeBadChunk:
		return "bad_chunk"
	case CodeUnsupportedSuite:
		return "unsupported_suite"
	case CodeDeclined:
		return "declined"
	}
	return fmt.Sprintf("code_%#02x", code)
}

// PeerError is an error code received from the peer in an Alert, Reject, Accept or Report.
// Authenticated is false for a Reject, which travels before any key is agreed: a device must
// treat it as a hint and never change durable state because of it.
type PeerError struct {
	Code          byte
	Authenticated bool
}

func (e *PeerError) Error() string {
	how := "authenticated"
	if !e.Authenticated {
		how = "unauthenticated"
	}
	return fmt.Sprintf("peer reported %s (%s)", CodeName(e.Code), how)
}

// Unwrap lets errors.Is(err, ErrRollback) match a peer's rollback report.
func (e *PeerError) Unwrap() error { return codeErrors[e.Code] }

// Reason is the stable snake_case name of the sentinel error err wraps, for logs, metric
// labels and the test vectors' expected errors; "other" when it wraps none.
func Reason(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *PeerError
	if errors.As(err, &pe) {
		return CodeName(pe.Code)
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

var reasons = []struct {
	err  error
	name string
}{
	{ErrFrameTooLarge, "frame_too_large"},
	{ErrUnexpectedMessage, "unexpected_message"},
	{ErrBadRecord, "bad_record"},
	{ErrTruncated, "truncated"},
	{ErrCounterExhausted, "counter_exhausted"},
	{ErrMalformed, "malformed"},
	{ErrAuthFailed, "auth_failed"},
	{ErrUnsupportedVersion, "unsupported_version"},
	{ErrUnsupportedSuite, "unsupported_suite"},
	{ErrRollback, "rollback"},
	{ErrWrongClass, "wrong_class"},
	{ErrTooLarge, "too_large"},
	{ErrBadChunk, "bad_chunk"},
	{ErrBadSignature, "bad_signature"},
	{ErrDigestMismatch, "digest_mismatch"},
	{ErrBusy, "busy"},
	{ErrUnavailable, "unavailable"},
	{ErrTimeout, "timeout"},
	{ErrFlash, "flash_error"},
	{ErrDeclined, "declined"},
}
