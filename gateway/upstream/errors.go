package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"
)

// Errors a caller may act on. Match them with errors.Is; *StatusError and *CertError carry
// details for errors.As.
var (
	// ErrConfig: Config or trust material is unusable; the message names the field.
	ErrConfig = errors.New("upstream: bad configuration")
	// ErrArgument: a call's arguments contradict each other (e.g. an offset past the size).
	ErrArgument = errors.New("upstream: invalid argument")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("upstream: client closed")

	// ErrPlaintextURL: an http:// URL (or a redirect to one). There is no plaintext fallback.
	ErrPlaintextURL = errors.New("plaintext http:// refused: the vendor must be reached over https://")
	// ErrBadURL: not an absolute https URL with a host.
	ErrBadURL = errors.New("not an absolute https:// URL")
	// ErrStatus: the server answered with a status the call cannot use; see *StatusError.
	ErrStatus = errors.New("unexpected HTTP status")
	// ErrTooLarge: the upstream sent, or declared, more than the limit or the expected size.
	ErrTooLarge = errors.New("upstream sent more than allowed")
	// ErrSizeMismatch: the upstream declared a size below the expected one (Content-Length,
	// Content-Range or 416); the resource is not the one the caller expects.
	ErrSizeMismatch = errors.New("upstream resource is shorter than expected")
	// ErrTruncated: the body ended early and retries did not complete it.
	ErrTruncated = errors.New("upstream body ended early")
	// ErrTimeout: an attempt exceeded Timeout, or made no progress for IdleTimeout.
	ErrTimeout = errors.New("upstream timed out")
	// ErrChanged: the resource changed (new ETag) while a download was being resumed; the
	// bytes already written belong to the old one, so the caller must start again from 0.
	ErrChanged = errors.New("upstream resource changed during the download")
	// ErrBadResponse: a response that breaks the rules of the request it answers (a 206 for
	// another range, an unparseable Content-Range, a compressed body).
	ErrBadResponse = errors.New("malformed upstream response")

	// ErrCertificate matches every *CertError: the TLS peer was refused, or refused us.
	ErrCertificate = errors.New("upstream TLS refused")
	// CertError reasons.
	ErrUnknownAuthority  = errors.New("certificate signed by an unknown authority (self-signed, or its CA is not in CABundle or the system roots)")
	ErrHostMismatch      = errors.New("certificate is not valid for the host name in the URL")
	ErrCertExpired       = errors.New("certificate expired or not yet valid (check both clocks)")
	ErrCertInvalid       = errors.New("certificate invalid")
	ErrPinMismatch       = errors.New("no certificate of the verified chain matches a configured pin")
	ErrClientCertRefused = errors.New("server refused our client certificate, or wanted one (mTLS: check ClientCert/ClientKey)")
)

// StatusError is an HTTP status the call could not use. It matches ErrStatus.
type StatusError struct {
	Code int
	URL  string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v %d from %s", ErrStatus, e.Code, e.URL)
}

// Is makes errors.Is(err, ErrStatus) true.
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// retryable reports whether the same request may succeed later: server overload or failure,
// not a refusal.
func (e *StatusError) retryable() bool {
	return e.Code == 408 || e.Code == 429 || e.Code >= 500
}

// CertError is a TLS refusal in either direction. It matches ErrCertificate and its Reason,
// and unwraps to the crypto/tls or crypto/x509 detail.
type CertError struct {
	Host   string
	Reason error // ErrUnknownAuthority, ErrHostMismatch, ErrCertExpired, ErrCertInvalid, ErrPinMismatch or ErrClientCertRefused
	Err    error
}

func (e *CertError) Error() string {
	return fmt.Sprintf("%v by %s: %v: %v", ErrCertificate, e.Host, e.Reason, e.Err)
}

// Is makes errors.Is match ErrCertificate and the reason.
func (e *CertError) Is(target error) bool { return target == ErrCertificate || target == e.Reason }

func (e *CertError) Unwrap() error { return e.Err }

// clientCertAlerts are the TLS alerts a server sends when it refuses the client's
// certificate or wanted one. A local verification failure never shows up as a remote alert,
// so a remote one of these is about us.
var clientCertAlerts = [...]tls.AlertError{
	42,  // bad_certificate
	43,  // unsupported_certificate
	44,  // certificate_revoked
	45,  // certificate_expired
	46,  // certificate_unknown
	48,  // unknown_ca
	49,  // access_denied
	116, // certificate_required (TLS 1.3)
}

// certError turns a TLS failure into a *CertError with a reason, or returns nil if err is
// no certificate problem. Errors arrive through net/http's TLS or quic-go's: both keep the
// x509 error in the chain, while a remote alert is a net.OpError over TCP and a remote
// crypto TransportError over QUIC.
func certError(host string, err error) *CertError {
	if ce, ok := errors.AsType[*CertError](err); ok {
		return ce
	}
	var reason error
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, new(x509.UnknownAuthorityError)):
		reason = ErrUnknownAuthority
	case errors.As(err, &hostErr):
		reason = ErrHostMismatch
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			reason = ErrCertExpired
		} else {
			reason = ErrCertInvalid
		}
	case errors.As(err, new(*tls.CertificateVerificationError)):
		reason = ErrCertInvalid
	case isClientCertAlert(err):
		reason = ErrClientCertRefused
	default:
		return nil
	}
	return &CertError{Host: host, Reason: reason, Err: err}
}

func isClientCertAlert(err error) bool {
	// TCP: crypto/tls reports a received alert as a net.OpError "remote error" around an
	// unexported alert type whose text is that of the matching tls.AlertError.
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "remote error" && op.Err != nil {
		for _, a := range clientCertAlerts {
			if op.Err.Error() == a.Error() {
				return true
			}
		}
	}
	// QUIC: the peer closed the connection with CRYPTO_ERROR 0x100+alert.
	if te, ok := errors.AsType[*quic.TransportError](err); ok && te.Remote && te.ErrorCode.IsCryptoError() {
		alert := tls.AlertError(te.ErrorCode - 0x100)
		for _, a := range clientCertAlerts {
			if alert == a {
				return true
			}
		}
	}
	return false
}

// permanent reports whether err must not be retried: the same request would fail the same
// way, or the caller asked to stop.
func permanent(err error) bool {
	if se, ok := errors.AsType[*StatusError](err); ok {
		return !se.retryable()
	}
	for _, p := range []error{
		ErrCertificate, ErrPlaintextURL, ErrBadURL, ErrTooLarge, ErrSizeMismatch,
		ErrChanged, ErrBadResponse, ErrClosed, ErrArgument, errWrite,
	} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// errWrite marks a failure of the caller's writer: the upstream is not at fault and
// retrying cannot help.
var errWrite = errors.New("writing the download failed")
