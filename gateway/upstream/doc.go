// Package upstream is the gateway's strict HTTPS client to the vendor's firmware server:
// the first step of the flow (upstream -> manifest check -> cache -> catalog -> device).
// It fetches manifests (FetchDoc, with ETag polling) and images (Download, resumable) over
// HTTP/2 or HTTP/3, and checks nothing about their content: gateway/manifest and
// gateway/cache verify what it brings.
//
// # Trust
//
// Certificates are verified by crypto/tls as usual, against the system roots or, when
// Config.CABundle names a PEM file, against that bundle alone; InsecureSkipVerify is never
// set. Config.Pins (HPKP form, "sha256/" + base64 of the SHA-256 of the SubjectPublicKeyInfo;
// PinOf computes one) narrow this further: some certificate of the verified chain, leaf,
// intermediate or root, must carry a pinned key, so pinning the vendor's CA survives leaf
// renewals. A certificate the server sends outside the verified chain is not looked at.
// Config.ClientCert and ClientKey are presented when the server asks (mutual TLS). TLS 1.2
// is the minimum; TLS 1.3 is used whenever the server has it. http:// URLs, and redirects
// to them, fail with ErrPlaintextURL before any connection is made.
//
// All of that is one immutable Trust snapshot. Client.SetTrust swaps in a new one (built by
// LoadTrust or NewTrust): new connections use it, idle ones from the old snapshot are
// closed, attempts under way finish on theirs. certs/ can reload on change through it.
//
// # Protocols
//
// Config.Transport "h2" speaks HTTP/2 over TCP (HTTP/1.1 if the server offers no h2; the TLS
// is the same). "h3" speaks HTTP/3 over QUIC to the URL's host and port and never falls back.
// "auto", the default, starts with HTTP/2 and remembers per origin the HTTP/3 endpoint that
// an Alt-Svc header advertises, for its max-age (RFC 7838; "clear" withdraws it); later
// requests go there, and when HTTP/3 fails the request is sent again over HTTP/2 and HTTP/3
// is left alone for that origin for five minutes. Only alternatives on the origin's own host
// are followed, and the certificate is always checked against the origin's name. Every
// result reports the protocol that answered: ProtoH3, ProtoH2 or ProtoHTTP11.
//
// # Limits, retries, resume
//
// Nothing is read without a bound: FetchDoc stops one byte past its limit (default 64 KiB)
// and Download one byte past the size its caller expects, both with ErrTooLarge, and
// response headers are capped at 64 KiB. An attempt is bounded by Timeout, and cut when no
// data arrives for IdleTimeout. Failures that may pass (network errors, cuts, timeouts,
// 408, 429, 5xx) are retried up to Retries times with exponential backoff and jitter;
// refusals (certificates, pins, limits, sizes, other statuses) are returned at once.
// Download resumes each retry with a Range request from the byte its writer got to, and
// copes with servers that ignore Range (see Download).
//
// Errors are matched with errors.Is against the Err* sentinels; *StatusError carries the
// HTTP status and *CertError the reason a TLS peer was refused, either way round.
package upstream
