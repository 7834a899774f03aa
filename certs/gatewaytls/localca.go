package gatewaytls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/fotagate/fotagate/certs/localca"
)

// Errors of the local CA mode a caller may act on.
var (
	// ErrRootKeyPermissions: the root key file may be read or written by others than its
	// owner. The gateway refuses to use it; the message has the chmod that fixes it.
	ErrRootKeyPermissions = errors.New("local CA root key file is open to other users")
	// ErrRootBroken: the root directory lacks one of its two files, or they don't belong
	// together, or the root expired. The message says what to restore or remove.
	ErrRootBroken = errors.New("local CA root unusable")
	// ErrNoRoot: ExportRoot found no root: the gateway has not run in local CA mode yet.
	ErrNoRoot = errors.New("no local CA root yet")
	// ErrNotLocalCA: a local CA operation on a Manager in another mode.
	ErrNotLocalCA = errors.New("gateway TLS is not in local CA mode")
	// ErrNameNotAllowed: a certificate request named something outside Config.Names.
	ErrNameNotAllowed = errors.New("name not in the gateway's configured names")
)

// maxRootFile bounds what is read of a root file: a PEM certificate or key is a few KiB.
const maxRootFile = 64 << 10

// openRoot returns the root in stateDir/RootDir, making one if there is none. A new root is
// written to a temporary directory and renamed into place, so a crash never leaves half a
// root behind and two gateways starting at once end up with the same one.
func openRoot(stateDir string, l LocalCA, log *zap.Logger) (*localca.CA, error) {
	dir := filepath.Join(stateDir, RootDir)
	ca, err := readRoot(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		return ca, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("local CA root: %w", err)
	}
	ca, err = localca.New(l.RootName, l.RootLifetime)
	if err != nil {
		return nil, fmt.Errorf("local CA root: %w", err)
	}
	if err := writeRoot(dir, ca); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readRoot(dir) // another gateway on this state dir made one first
		}
		return nil, err
	}
	log.Warn("made a new local CA root for the gateway's HTTPS; clients must trust it: fotagate ca export > fotagate-root.crt",
		zap.String("root", filepath.Join(dir, RootCertFile)), zap.String("sha256", Fingerprint(ca.Cert)),
		zap.Time("not_after", ca.Cert.NotAfter))
	return ca, nil
}

func writeRoot(dir string, ca *localca.CA) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+RootDir+"-new-*") // mode 0700
	if err != nil {
		return fmt.Errorf("local CA root: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := writeSynced(filepath.Join(tmp, RootKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("local CA root: %w", err)
	}
	if err := writeSynced(filepath.Join(tmp, RootCertFile), ca.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("local CA root: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// rename(2) replaces an empty directory but fails on one with files in it.
		if _, serr := os.Stat(filepath.Join(dir, RootKeyFile)); serr == nil {
			return fs.ErrExist
		}
		return fmt.Errorf("local CA root: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readRoot loads the root in dir; fs.ErrNotExist (alone) means there is none at all.
func readRoot(dir string) (*localca.CA, error) {
	keyPath, certPath := filepath.Join(dir, RootKeyFile), filepath.Join(dir, RootCertFile)
	keyPEM, keyErr := readKey(keyPath)
	certPEM, certErr := readLimited(certPath)
	switch {
	case errors.Is(keyErr, fs.ErrNotExist) && errors.Is(certErr, fs.ErrNotExist):
		return nil, fs.ErrNotExist
	case errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s exists but %s does not: restore the key from a backup, or remove %s to make a new root (clients must then trust the new one)",
			ErrRootBroken, certPath, keyPath, dir)
	case keyErr != nil:
		return nil, keyErr
	case errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %s exists but %s does not: restore it (a client's copy from fotagate ca export will do), or remove %s to make a new root",
			ErrRootBroken, keyPath, certPath, dir)
	case certErr != nil:
		return nil, fmt.Errorf("local CA root: %w", certErr)
	}
	ca, err := localca.Parse(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s and %s: %v; restore them, or remove %s to make a new root", ErrRootBroken, certPath, keyPath, err, dir)
	}
	if time.Now().After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("%w: the root in %s expired at %s; remove %s to make a new root, and give clients the new one",
			ErrRootBroken, certPath, ca.Cert.NotAfter.Format(time.RFC3339), dir)
	}
	return ca, nil
}

// readKey reads the root key, refusing a file others may read or write. The mode is taken
// from the open file, so it is the mode of the bytes read.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fs.ErrNotExist
		}
		return nil, fmt.Errorf("local CA root key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("local CA root key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrRootBroken, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o; the key that signs the gateway's certificates must be private to the gateway's user: chmod 600 %s",
			ErrRootKeyPermissions, path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, maxRootFile))
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fs.ErrNotExist
		}
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxRootFile))
}

// ExportRoot writes the local CA root certificate of the gateway whose state directory is
// stateDir to w, in PEM, for clients to trust (`fotagate ca export`). It reads only the
// public certificate, never the key, and makes nothing: with no root yet it fails with
// ErrNoRoot.
func ExportRoot(stateDir string, w io.Writer) error {
	path := filepath.Join(stateDir, RootDir, RootCertFile)
	b, err := readLimited(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist; start the gateway once with TLS mode %q to make it", ErrNoRoot, path, ModeLocalCA)
	}
	if err != nil {
		return fmt.Errorf("local CA root: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: %s holds no PEM certificate", ErrRootBroken, path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.IsCA {
		return fmt.Errorf("%w: %s is not a CA certificate", ErrRootBroken, path)
	}
	return writeCertPEM(w, cert)
}

func writeCertPEM(w io.Writer, cert *x509.Certificate) error {
	return pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// Fingerprint is the SHA-256 of a certificate, in the colon-separated hex that browsers and
// `openssl x509 -fingerprint -sha256` show, so an operator can compare the root a client
// was given with the gateway's.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// localIssuer is the certmagic.Issuer of the local CA mode: certmagic decides when a
// certificate is due, makes the key and the request, stores the result and serves it; the
// issuer only signs, and only for the configured names.
type localIssuer struct {
	ca       *localca.CA
	allowed  map[string]bool // normalised Config.Names
	lifetime time.Duration
	key      string
	log      *zap.Logger
	now      func() time.Time
}

func newLocalIssuer(ca *localca.CA, names []string, lifetime time.Duration, log *zap.Logger) *localIssuer {
	allowed := make(map[string]bool, len(names))
	for _, n := range names {
		allowed[normalName(n)] = true
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	return &localIssuer{
		ca: ca, allowed: allowed, lifetime: lifetime, log: log, now: time.Now,
		// Certificates are filed under the issuer key. Naming the root in it means a new
		// root never serves leaves of the old one: they are simply not found.
		key: "fotagate-localca-" + hex.EncodeToString(sum[:8]),
	}
}

// IssuerKey implements certmagic.Issuer.
func (li *localIssuer) IssuerKey() string { return li.key }

// Issue implements certmagic.Issuer: it signs csr for at most LeafLifetime.
func (li *localIssuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	names := append([]string(nil), csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	for _, n := range names {
		if !li.allowed[normalName(n)] {
			// Not worth retrying: certmagic only asks for configured names.
			return nil, certmagic.ErrNoRetry{Err: fmt.Errorf("%w: %q", ErrNameNotAllowed, n)}
		}
	}
	now := li.now()
	// Backdated a little for clients whose clock is behind, but never by a large part of a
	// short lifetime, which would pull the renewal window forward.
	backdate := min(time.Minute, li.lifetime/10)
	leaf, err := li.ca.SignCSR(csr, now.Add(-backdate), now.Add(li.lifetime))
	if err != nil {
		return nil, err
	}
	li.log.Info("local CA issued a certificate", zap.Strings("names", names),
		zap.String("serial", leaf.SerialNumber.Text(16)), zap.Time("not_after", leaf.NotAfter))
	return &certmagic.IssuedCertificate{
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
	}, nil
}

var _ certmagic.Issuer = (*localIssuer)(nil)
