package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fotagate/fotagate/protocol"
)

// Limits and names from FORMAT.md. Every one is checked before the value is used.
const (
	// FormatVersion is the only "format" value this package reads and writes (FORMAT.md 2).
	FormatVersion = 1
	// MaxDocSize bounds manifest.json; larger documents are refused before parsing.
	MaxDocSize = 64 << 10
	// MaxSigSize bounds manifest.json.sig; a valid envelope is about 140 bytes.
	MaxSigSize = 1 << 10
	// MaxImageSize is the largest image a manifest can describe: sizes travel as uint32 in
	// the device protocol and the image statement.
	MaxImageSize = math.MaxUint32
	// MaxVersionLen bounds the human version string.
	MaxVersionLen = 64
	// MaxURLLen bounds the image URL.
	MaxURLLen = 2048

	// DocName and SigName are the file names of a release in a class directory (FORMAT.md 5).
	DocName = "manifest.json"
	SigName = DocName + SigSuffix
	// SigSuffix turns a manifest URL into its signature URL.
	SigSuffix = ".sig"
)

// Manifest is one verified release for one device class (FORMAT.md 3). Values come from
// Verifier.Verify, which has checked every field, both signatures and the expiry.
type Manifest struct {
	Class   string // device class, protocol.CheckClass rules
	Version string // for people; never compared
	Seq     uint32 // release sequence; higher is newer
	MinSeq  uint32 // lowest running sequence that may install this image; 0 means any
	Size    uint32 // image size in bytes, at least 1
	SHA256  [protocol.DigestSize]byte
	URL     string // as written: https, or relative to the manifest URL
	Expires time.Time
	// ImageSig is the vendor's Ed25519 signature over Statement(), forwarded to devices.
	ImageSig [protocol.SignatureSize]byte
	// KeyID names the vendor key that signed the document and ImageSig.
	KeyID KeyID
}

// Statement is the device-facing image statement that ImageSig signs (PROTOCOL.md 7.2).
func (m *Manifest) Statement() protocol.ImageStatement {
	return protocol.ImageStatement{Class: m.Class, Seq: m.Seq, Size: m.Size, Digest: m.SHA256}
}

// ImageName is the content-addressed file name of the image, "<sha256 hex>.bin", under which
// PublishDir stores it so a static host can serve it forever.
func (m *Manifest) ImageName() string { return hex.EncodeToString(m.SHA256[:]) + ".bin" }

// CheckRollback refuses the manifest if its seq is lower than running: the sequence a device
// reports, or the seq of the manifest the gateway accepted before. An equal seq is the same
// release and is allowed (a resumed or repeated install).
func (m *Manifest) CheckRollback(running uint32) error {
	if m.Seq < running {
		return fmt.Errorf("%w: manifest for class %q has seq %d (version %q) but %d is already running or accepted; a vendor must publish a higher seq, never reuse a lower one",
			ErrRollback, m.Class, m.Seq, m.Version, running)
	}
	return nil
}

// CheckInstall reports whether a device running sequence running may install this image:
// not a rollback, and running is at least min_seq.
func (m *Manifest) CheckInstall(running uint32) error {
	if err := m.CheckRollback(running); err != nil {
		return err
	}
	if running < m.MinSeq {
		return fmt.Errorf("%w: device runs seq %d but class %q seq %d needs at least min_seq %d; the device must first install an intermediate release",
			ErrBelowMinSeq, running, m.Class, m.Seq, m.MinSeq)
	}
	return nil
}

// VerifyImage reads the image from r and checks its size and SHA-256 against the manifest.
// It reads at most Size+1 bytes, so a hostile server cannot make it read forever; wrap the
// download in io.TeeReader to store and check it in one pass.
func (m *Manifest) VerifyImage(r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, int64(m.Size)+1))
	if err != nil {
		return fmt.Errorf("manifest %s: reading image: %w", m.Class, err)
	}
	if n != int64(m.Size) {
		got := fmt.Sprintf("%d bytes", n)
		if n > int64(m.Size) {
			got = fmt.Sprintf("more than %d bytes", m.Size)
		}
		return fmt.Errorf("%w: class %q seq %d: manifest says %d bytes, image has %s; the download was truncated or the image at %s is not this release",
			ErrSizeMismatch, m.Class, m.Seq, m.Size, got, m.URL)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum != m.SHA256 {
		return fmt.Errorf("%w: class %q seq %d: manifest says sha256 %x, image has %x; the image at %s was altered or is not this release",
			ErrDigestMismatch, m.Class, m.Seq, m.SHA256, sum, m.URL)
	}
	return nil
}

// ResolveURL returns the absolute image URL: the manifest's URL itself when it is absolute,
// or resolved against base, the URL the manifest was fetched from. The result must be https:
// there is no plaintext fallback, so an http base with a relative image URL is refused too.
func (m *Manifest) ResolveURL(base *url.URL) (*url.URL, error) {
	ref, err := url.Parse(m.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: field \"url\": %v", ErrMalformed, err)
	}
	u := ref
	if !ref.IsAbs() {
		if base == nil {
			return nil, fmt.Errorf("%w: field \"url\" %q is relative and no manifest URL was given to resolve it against", ErrMalformed, m.URL)
		}
		u = base.ResolveReference(ref)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%w: image URL resolves to %q; serve the manifest and image over https (fotagate never falls back to plaintext)",
			ErrInsecureURL, u.Redacted())
	}
	if u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: image URL %q needs a host and no user info", ErrMalformed, u.Redacted())
	}
	return u, nil
}

// SignatureURL returns the URL of the detached signature for a manifest URL: the same URL
// with SigSuffix appended to the path (FORMAT.md 5).
func SignatureURL(manifestURL *url.URL) *url.URL {
	u := *manifestURL
	u.Path += SigSuffix
	if u.RawPath != "" {
		u.RawPath += SigSuffix
	}
	return &u
}

// The document's fields, in the order Publish writes them (FORMAT.md 3).
const (
	fieldFormat   = "format"
	fieldClass    = "class"
	fieldVersion  = "version"
	fieldSeq      = "seq"
	fieldMinSeq   = "min_seq"
	fieldSize     = "size"
	fieldSHA256   = "sha256"
	fieldURL      = "url"
	fieldExpires  = "expires"
	fieldImageSig = "image_sig"
)

// requiredFields are the fields a document must have; min_seq alone is optional.
var requiredFields = [...]string{fieldFormat, fieldClass, fieldVersion, fieldSeq, fieldSize, fieldSHA256, fieldURL, fieldExpires, fieldImageSig}

// parse decodes a document strictly (FORMAT.md 4). It checks each field on its own and the
// fields against each other, but not signatures, class or expiry: Verifier does that, and
// calls parse only on bytes whose signature it has already checked.
func parse(doc []byte) (*Manifest, error) {
	if len(doc) > MaxDocSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(doc), MaxDocSize)
	}
	var m Manifest
	seen := make(map[string]bool, len(requiredFields)+1)
	err := decodeObject(doc, func(key string, val json.Token) error {
		var err error
		switch key {
		case fieldFormat:
			var f uint32
			if f, err = uintField(key, val); err == nil && f != FormatVersion {
				err = fmt.Errorf("%w: field \"format\" is %d; this gateway reads format %d only, upgrade fotagate", ErrMalformed, f, FormatVersion)
			}
		case fieldClass:
			if m.Class, err = stringField(key, val); err == nil {
				if cerr := protocol.CheckClass(m.Class); cerr != nil {
					err = fmt.Errorf("%w: field \"class\": %v", ErrMalformed, cerr)
				}
			}
		case fieldVersion:
			if m.Version, err = stringField(key, val); err == nil {
				err = checkVersion(m.Version)
			}
		case fieldSeq:
			m.Seq, err = uintField(key, val)
		case fieldMinSeq:
			m.MinSeq, err = uintField(key, val)
		case fieldSize:
			if m.Size, err = uintField(key, val); err == nil && m.Size == 0 {
				err = fmt.Errorf("%w: field \"size\" is 0; an image has at least one byte", ErrMalformed)
			}
		case fieldSHA256:
			var s string
			if s, err = stringField(key, val); err == nil {
				err = decodeHex(key, s, m.SHA256[:])
			}
		case fieldURL:
			if m.URL, err = stringField(key, val); err == nil {
				err = checkURL(m.URL)
			}
		case fieldExpires:
			var s string
			if s, err = stringField(key, val); err == nil {
				if m.Expires, err = time.Parse(time.RFC3339, s); err != nil {
					err = fmt.Errorf("%w: field \"expires\" %q is not an RFC 3339 time like 2026-01-02T15:04:05Z", ErrMalformed, s)
				}
			}
		case fieldImageSig:
			var s string
			if s, err = stringField(key, val); err == nil {
				err = decodeBase64(key, s, m.ImageSig[:])
			}
		default:
			// Unknown fields are refused, not skipped: a misspelt "min_seq" would otherwise
			// silently drop a safety limit, and a newer format's security field would be
			// ignored by an older gateway (FORMAT.md 4).
			return fmt.Errorf("%w: unknown field %q; format %d has only %q and %q (a newer format needs a newer fotagate)",
				ErrMalformed, key, FormatVersion, requiredFields, fieldMinSeq)
		}
		seen[key] = true
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, f := range requiredFields {
		if !seen[f] {
			return nil, fmt.Errorf("%w: required field %q is missing", ErrMalformed, f)
		}
	}
	if m.MinSeq > m.Seq {
		return nil, fmt.Errorf("%w: \"min_seq\" %d is above \"seq\" %d, so no device could install it", ErrMalformed, m.MinSeq, m.Seq)
	}
	return &m, nil
}

// encode writes m as a document in the layout FORMAT.md 3 shows: fixed field order, two-space
// indent, trailing newline. Verifiers never rely on this layout; they check the signed bytes.
func encode(m *Manifest) ([]byte, error) {
	// Field order follows the struct, so this struct is the layout.
	doc := struct {
		Format   int    `json:"format"`
		Class    string `json:"class"`
		Version  string `json:"version"`
		Seq      uint32 `json:"seq"`
		MinSeq   uint32 `json:"min_seq"`
		Size     uint32 `json:"size"`
		SHA256   string `json:"sha256"`
		URL      string `json:"url"`
		Expires  string `json:"expires"`
		ImageSig string `json:"image_sig"`
	}{
		Format:   FormatVersion,
		Class:    m.Class,
		Version:  m.Version,
		Seq:      m.Seq,
		MinSeq:   m.MinSeq,
		Size:     m.Size,
		SHA256:   hex.EncodeToString(m.SHA256[:]),
		URL:      m.URL,
		Expires:  m.Expires.UTC().Format(time.RFC3339Nano), // whole seconds print without a fraction
		ImageSig: base64.StdEncoding.EncodeToString(m.ImageSig[:]),
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// checkVersion keeps the human version printable: it ends up in logs and terminals, where
// control bytes could forge lines.
func checkVersion(v string) error {
	if len(v) == 0 || len(v) > MaxVersionLen {
		return fmt.Errorf("%w: field \"version\" must be 1 to %d bytes, got %d", ErrMalformed, MaxVersionLen, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return fmt.Errorf("%w: field \"version\" %q: byte %d is not printable ASCII", ErrMalformed, v, i)
		}
	}
	return nil
}

// checkURL accepts an absolute https URL or a relative reference; ResolveURL checks the
// resolved result again, since a relative reference inherits the manifest's scheme.
func checkURL(s string) error {
	if len(s) == 0 || len(s) > MaxURLLen {
		return fmt.Errorf("%w: field \"url\" must be 1 to %d bytes, got %d", ErrMalformed, MaxURLLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return fmt.Errorf("%w: field \"url\": byte %d is not a URL character; percent-encode it", ErrMalformed, i)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: field \"url\": %v", ErrMalformed, err)
	}
	if u.Scheme != "" && u.Scheme != "https" {
		return fmt.Errorf("%w: field \"url\" %q uses %s; the vendor must serve images over https (fotagate never falls back to plaintext)",
			ErrInsecureURL, u.Redacted(), u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: field \"url\" carries user info; credentials do not belong in a public manifest", ErrMalformed)
	}
	if u.IsAbs() && (u.Host == "" || u.Opaque != "") {
		return fmt.Errorf("%w: field \"url\" %q has no host", ErrMalformed, s)
	}
	return nil
}

// decodeObject reads b as exactly one JSON object whose members are strings or numbers and
// calls set for each member in order. It is stricter than encoding/json's Unmarshal, which
// matches keys case-insensitively, lets a duplicate key silently win, accepts invalid UTF-8
// and nested values anywhere: two readers of one signed document must never disagree about
// what it says.
func decodeObject(b []byte, set func(key string, val json.Token) error) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	syntax := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: document ends early (truncated?)", ErrMalformed)
		}
		return fmt.Errorf("%w: invalid JSON: %v", ErrMalformed, err)
	}
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%w: the document must be one JSON object", ErrMalformed)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: invalid JSON: object key is not a string", ErrMalformed)
		}
		if seen[key] {
			return fmt.Errorf("%w: field %q appears twice", ErrMalformed, key)
		}
		seen[key] = true
		val, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		if _, nested := val.(json.Delim); nested {
			return fmt.Errorf("%w: field %q must be a string or a number, not an object or array", ErrMalformed, key)
		}
		if err := set(key, val); err != nil {
			return err
		}
	}
	if tok, err = dec.Token(); err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '}' {
		return fmt.Errorf("%w: invalid JSON: object not closed", ErrMalformed)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return nil
}

func stringField(key string, val json.Token) (string, error) {
	s, ok := val.(string)
	if !ok {
		return "", fmt.Errorf("%w: field %q must be a JSON string", ErrMalformed, key)
	}
	return s, nil
}

// uintField accepts a JSON integer from 0 to MaxUint32 written plainly: no sign, fraction or
// exponent, so "1e3" and "42.0" are refused rather than rounded.
func uintField(key string, val json.Token) (uint32, error) {
	n, ok := val.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%w: field %q must be a JSON number", ErrMalformed, key)
	}
	v, err := strconv.ParseUint(string(n), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: field %q is %s; it must be a whole number from 0 to %d", ErrMalformed, key, n, uint32(math.MaxUint32))
	}
	return uint32(v), nil
}

// decodeHex accepts exactly len(dst) bytes as lower-case hex: one spelling per value.
func decodeHex(key, s string, dst []byte) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(dst) || hex.EncodeToString(b) != s {
		return fmt.Errorf("%w: field %q must be %d lower-case hex digits", ErrMalformed, key, 2*len(dst))
	}
	copy(dst, b)
	return nil
}

// decodeBase64 accepts exactly len(dst) bytes as padded standard base64 with zero padding
// bits (base64.StdEncoding.Strict): one spelling per value.
func decodeBase64(key, s string, dst []byte) error {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(dst) {
		return fmt.Errorf("%w: field %q must be %d bytes in padded standard base64", ErrMalformed, key, len(dst))
	}
	copy(dst, b)
	return nil
}
