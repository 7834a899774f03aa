package manifest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/fotagate/fotagate/protocol"
)

// PublishOptions describe a release; the image supplies size and digest.
type PublishOptions struct {
	Class   string
	Version string // for people, 1 to MaxVersionLen printable ASCII bytes
	Seq     uint32 // must be higher than every earlier release of the class
	MinSeq  uint32 // lowest running seq that may install this; 0 means any
	// URL is where the image will be served: an https URL, or a reference relative to the
	// manifest's own URL. Empty means "<sha256 hex>.bin" beside the manifest.
	URL     string
	Expires time.Time // required; gateways refuse the manifest from then on
}

// Publish hashes the image, signs the image statement and the manifest document with key, and
// returns manifest.json and manifest.json.sig. The document passes the same field checks a
// Verifier applies, so Publish cannot produce a release that gateways would refuse as
// malformed.
func Publish(image io.Reader, opts PublishOptions, key ed25519.PrivateKey) (doc, sig []byte, err error) {
	doc, sig, err = publish(image, opts, key, MaxImageSize)
	if err != nil {
		return nil, nil, fmt.Errorf("publish %s: %w", opts.Class, err)
	}
	return doc, sig, nil
}

// publish is Publish with the image size limit as a parameter, so tests can exercise the limit
// without hashing 4 GiB.
func publish(image io.Reader, opts PublishOptions, key ed25519.PrivateKey, limit int64) (doc, sig []byte, err error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadKey, len(key), ed25519.PrivateKeySize)
	}
	if opts.Expires.IsZero() {
		return nil, nil, fmt.Errorf("%w: no expiry given; every manifest must expire (for example 720h from now)", ErrMalformed)
	}
	size, sum, err := hashImage(image, limit)
	if err != nil {
		return nil, nil, err
	}
	m := &Manifest{
		Class:   opts.Class,
		Version: opts.Version,
		Seq:     opts.Seq,
		MinSeq:  opts.MinSeq,
		Size:    size,
		SHA256:  sum,
		URL:     opts.URL,
		// Whole seconds in UTC: the document's time has one spelling, whatever the caller's
		// zone or clock resolution.
		Expires: opts.Expires.UTC().Truncate(time.Second),
	}
	if m.URL == "" {
		m.URL = m.ImageName()
	}
	st := m.Statement()
	if m.ImageSig, err = st.Sign(key); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if doc, err = encode(m); err != nil {
		return nil, nil, err
	}
	if _, err := parse(doc); err != nil {
		return nil, nil, err
	}
	return doc, signDoc(doc, key), nil
}

// hashImage reads the whole image, refusing more than limit bytes or none.
func hashImage(r io.Reader, limit int64) (uint32, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, limit+1))
	if err != nil {
		return 0, sum, fmt.Errorf("reading image: %w", err)
	}
	if n > limit {
		return 0, sum, fmt.Errorf("%w: image is over %d bytes; the device protocol carries sizes as uint32", ErrImageTooLarge, limit)
	}
	if n == 0 {
		return 0, sum, fmt.Errorf("%w: image is empty", ErrMalformed)
	}
	h.Sum(sum[:0])
	return uint32(n), sum, nil
}

// Release is what PublishDir wrote.
type Release struct {
	Manifest  *Manifest
	DocPath   string // <dir>/<class>/manifest.json
	SigPath   string // <dir>/<class>/manifest.json.sig
	ImagePath string // the image copy beside them; empty when the URL points elsewhere
}

// PublishDir publishes the image file at imagePath into dir laid out for a static HTTPS host
// (FORMAT.md 5): dir/<class>/manifest.json, manifest.json.sig and, when the image URL names a
// file beside the manifest (the default content-addressed name, or a plain relative file
// name), a copy of the image under that name. Files are replaced atomically one at a time.
func PublishDir(dir, imagePath string, opts PublishOptions, key ed25519.PrivateKey) (*Release, error) {
	rel, err := publishDir(dir, imagePath, opts, key)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", opts.Class, err)
	}
	return rel, nil
}

func publishDir(dir, imagePath string, opts PublishOptions, key ed25519.PrivateKey) (*Release, error) {
	if err := protocol.CheckClass(opts.Class); err != nil {
		return nil, fmt.Errorf("%w: class: %v", ErrMalformed, err)
	}
	// CheckClass allows "." and "..", which would escape dir as a path element.
	if opts.Class == "." || opts.Class == ".." {
		return nil, fmt.Errorf("%w: class %q cannot name a directory", ErrMalformed, opts.Class)
	}
	f, err := os.Open(imagePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, sig, err := publish(f, opts, key, MaxImageSize)
	if err != nil {
		return nil, err
	}
	m, err := parse(doc)
	if err != nil {
		return nil, err
	}
	m.KeyID = KeyIDOf(key.Public().(ed25519.PublicKey))

	classDir := filepath.Join(dir, m.Class)
	if err := checkPrevious(filepath.Join(classDir, DocName), m); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(classDir, 0o755); err != nil {
		return nil, err
	}
	rel := &Release{
		Manifest: m,
		DocPath:  filepath.Join(classDir, DocName),
		SigPath:  filepath.Join(classDir, SigName),
	}
	// The image goes first, so a host synced in file order never serves a manifest whose
	// image is missing.
	if name := localImageName(m.URL); name != "" {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		rel.ImagePath = filepath.Join(classDir, name)
		// Copy through VerifyImage: if the file changed since it was hashed, the copy fails
		// instead of publishing an image that does not match its manifest.
		err := writeAtomic(rel.ImagePath, 0o644, func(w io.Writer) error {
			return m.VerifyImage(io.TeeReader(f, w))
		})
		if err != nil {
			return nil, err
		}
	}
	if err := writeAtomic(rel.DocPath, 0o644, writeBytes(doc)); err != nil {
		return nil, err
	}
	if err := writeAtomic(rel.SigPath, 0o644, writeBytes(sig)); err != nil {
		return nil, err
	}
	return rel, nil
}

// checkPrevious refuses to replace the release in path with m if m would be a rollback, or
// would reuse its seq for a different image: gateways refuse the first, and the second would
// leave devices and gateways disagreeing about what seq N is. Re-signing the same image with
// the same seq (say, to extend the expiry) is allowed.
func checkPrevious(path string, m *Manifest) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	prev, err := parse(old)
	if err != nil {
		return fmt.Errorf("the existing %s cannot be read, so the new seq cannot be checked against it; remove it if you mean to replace it: %w", path, err)
	}
	if err := m.CheckRollback(prev.Seq); err != nil {
		return fmt.Errorf("%s already holds seq %d: %w", path, prev.Seq, err)
	}
	if m.Seq == prev.Seq && (m.SHA256 != prev.SHA256 || m.Size != prev.Size) {
		return fmt.Errorf("%w: %s already holds seq %d for a different image; give the new image a higher seq",
			ErrRollback, path, prev.Seq)
	}
	return nil
}

// localImageName returns the file name a relative image URL names beside the manifest, or ""
// when the URL points anywhere else (another host, another directory, a query).
func localImageName(ref string) string {
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "" || u.Host != "" || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	name := u.Path
	if name == "" || name == "." || name == ".." || name == DocName || name == SigName {
		return ""
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return ""
		}
	}
	return name
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// writeAtomic writes a file through a temporary file in the same directory and a rename, so
// a reader (or a sync to the host) sees the old file or the new one, never a torn one.
func writeAtomic(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return nil
}
