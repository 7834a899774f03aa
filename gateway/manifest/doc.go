// Package manifest is fotagate's upstream release format: one small JSON document per device
// class that names the newest image (sequence, size, SHA-256, URL, expiry) and carries the
// vendor's device-facing image signature, plus a detached Ed25519 signature over the document.
//
// It sits between gateway/upstream, which fetches manifest.json, manifest.json.sig and the image
// over HTTPS, and gateway/cache, which keeps only what a Verifier accepted and what VerifyImage
// matched. The vendor side (keys, Publish, PublishDir) lives here too, so the writer and the
// reader of the format cannot drift apart. FORMAT.md beside this file is the normative spec.
package manifest
