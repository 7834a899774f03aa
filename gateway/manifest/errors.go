package manifest

import "errors"

// Every refusal has its own sentinel, so the gateway can count, log and react to each one
// (errors.Is); the wrapped message names the field and says what to do about it.
var (
	// ErrTooLarge: the document or signature file is over MaxDocSize or MaxSigSize. Checked
	// before any parsing.
	ErrTooLarge = errors.New("manifest document over size limit")
	// ErrUnsigned: there is no signature (empty or missing manifest.json.sig).
	ErrUnsigned = errors.New("manifest is unsigned")
	// ErrMalformed: the document or signature envelope breaks FORMAT.md.
	ErrMalformed = errors.New("malformed manifest")
	// ErrUnknownKey: the signature names a key ID that the verifier is not configured with.
	ErrUnknownKey = errors.New("manifest signed by an unknown key")
	// ErrBadSignature: the document signature does not verify under the named key.
	ErrBadSignature = errors.New("manifest signature invalid")
	// ErrBadImageSignature: the document verifies but its image_sig, the signature devices
	// check, does not. Forwarding it would make every verifying device refuse the image.
	ErrBadImageSignature = errors.New("manifest image_sig invalid")
	// ErrWrongClass: the manifest is for a device class other than the one requested.
	ErrWrongClass = errors.New("manifest is for another device class")
	// ErrExpired: the manifest's expiry time has passed.
	ErrExpired = errors.New("manifest expired")
	// ErrInsecureURL: the image URL is, or resolves to, something other than https.
	ErrInsecureURL = errors.New("image URL is not https")
	// ErrRollback: the manifest's seq is lower than the one already running or accepted.
	ErrRollback = errors.New("manifest sequence lower than the running one")
	// ErrBelowMinSeq: the device runs a sequence lower than the manifest's min_seq.
	ErrBelowMinSeq = errors.New("running sequence below the manifest's min_seq")
	// ErrSizeMismatch: the image is shorter or longer than the manifest's size.
	ErrSizeMismatch = errors.New("image size differs from the manifest")
	// ErrDigestMismatch: the image's SHA-256 differs from the manifest's sha256.
	ErrDigestMismatch = errors.New("image SHA-256 differs from the manifest")
	// ErrImageTooLarge: Publish was given an image over MaxImageSize bytes.
	ErrImageTooLarge = errors.New("image larger than a uint32 size allows")
	// ErrBadKey: a key file or configured key is not a valid fotagate vendor key.
	ErrBadKey = errors.New("invalid vendor key")
	// ErrKeyPermissions: a private key file can be read by group or others.
	ErrKeyPermissions = errors.New("private key file is readable by group or others")
)
