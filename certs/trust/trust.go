// Package trust keeps the upstream client's trust current: it loads the vendor CA bundle,
// the SPKI pins and the client certificate for mutual TLS into a gateway/upstream Trust, and
// reloads them when their files change, without a restart. It serves the first step of the
// flow (upstream -> manifest check -> cache -> catalog -> device): gateway/upstream verifies
// with the Trust, this package only builds it and swaps it in with Client.SetTrust.
//
// Files are polled, not watched with inotify: a poll reads the (small) files and compares
// their SHA-256 with those of the trust in use. That sees every way a file gets replaced
// (rewritten in place, renamed over, a symlink swapped as Kubernetes does with secrets),
// needs no watch on the directory and no platform support, and costs a few reads a poll.
//
// A reload that fails (no certificate, a truncated PEM, a key that is not the certificate's,
// an expired client certificate) keeps the trust in use, logs why once, and is tried again
// when the files change again. A half-written file fails the strict parse and is picked up
// when the writer finishes; so is a certificate replaced a moment before its key.
package trust

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fotagate/fotagate/gateway/upstream"
)

// Errors a caller may act on; each wraps the detail and names the file.
var (
	// ErrCABundle: the CA bundle file is missing, unreadable, or not a clean PEM bundle of
	// certificates.
	ErrCABundle = errors.New("upstream CA bundle unusable")
	// ErrClientCert: the client certificate or key is missing, unreadable, does not belong
	// together, or the certificate expired.
	ErrClientCert = errors.New("upstream client certificate unusable")
	// ErrConfig: the Config itself is wrong (one of ClientCert/ClientKey, a bad pin, a
	// negative interval).
	ErrConfig = errors.New("upstream trust: bad configuration")
)

// DefaultInterval is how often Run polls the files unless Config.Interval says otherwise.
const DefaultInterval = 10 * time.Second

// maxFile bounds what is read of one file. The largest legitimate one, a full public CA
// bundle, is about 200 KiB.
const maxFile = 4 << 20

// Config names the trust material as gateway/upstream.Config does, plus the poll interval.
type Config struct {
	// CABundle is a PEM file of the CA certificates that may sign the vendor's server
	// certificate; empty means the system roots. Every PEM block must be a certificate.
	CABundle string
	// Pins are SPKI pins in upstream's form ("sha256/" + base64; upstream.PinOf makes one).
	// They come from the configuration, not a file, so they change with it.
	Pins []string
	// ClientCert and ClientKey are the PEM files of the certificate and key presented for
	// mutual TLS. Set both or neither.
	ClientCert, ClientKey string
	// Interval is how often Run polls the files (default DefaultInterval).
	Interval time.Duration
}

func (c Config) validate() error {
	if (c.ClientCert == "") != (c.ClientKey == "") {
		return fmt.Errorf("%w: ClientCert/ClientKey: only one is set; set both PEM files for mutual TLS, or neither", ErrConfig)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: Interval: %s is negative; use a positive duration, or 0 for the default %s", ErrConfig, c.Interval, DefaultInterval)
	}
	return nil
}

// files is the content of the trust files as read in one poll.
type files struct {
	bundle, cert, key []byte
	keyMode           os.FileMode
}

// state identifies the content read: equal states mean nothing changed. A missing or
// unreadable file has the state of its error, so it too is reported once.
type state [3]string

func (c Config) read() (files, state, error) {
	var f files
	var s state
	var errs []error
	one := func(i int, path string, dst *[]byte, mode *os.FileMode, wrap error) {
		if path == "" {
			return
		}
		b, m, err := readFile(path)
		if err != nil {
			s[i] = "error: " + err.Error()
			errs = append(errs, fmt.Errorf("%w: %v", wrap, err))
			return
		}
		sum := sha256.Sum256(b)
		s[i] = string(sum[:])
		*dst = b
		if mode != nil {
			*mode = m
		}
	}
	one(0, c.CABundle, &f.bundle, nil, ErrCABundle)
	one(1, c.ClientCert, &f.cert, nil, ErrClientCert)
	one(2, c.ClientKey, &f.key, &f.keyMode, ErrClientCert)
	return f, s, errors.Join(errs...)
}

func readFile(path string) ([]byte, os.FileMode, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxFile+1))
	if err != nil {
		return nil, 0, err
	}
	if len(b) > maxFile {
		return nil, 0, fmt.Errorf("%s is larger than %d bytes: not a certificate file", path, maxFile)
	}
	return b, st.Mode(), nil
}

// Material describes a loaded Trust for logs and callers.
type Material struct {
	CAs        []*x509.Certificate // from CABundle; nil means the system roots
	ClientCert *x509.Certificate   // nil: none
	Pins       int
}

// build makes a Trust from the content read in one poll.
func (c Config) build(f files, now time.Time) (*upstream.Trust, Material, error) {
	var m Material
	var roots *x509.CertPool
	if c.CABundle != "" {
		cas, err := ParseBundle(f.bundle)
		if err != nil {
			return nil, m, fmt.Errorf("%w: CABundle %s: %v", ErrCABundle, c.CABundle, err)
		}
		roots = x509.NewCertPool()
		for _, ca := range cas {
			roots.AddCert(ca)
		}
		m.CAs = cas
	}
	var cert *tls.Certificate
	if c.ClientCert != "" {
		pair, err := tls.X509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, m, fmt.Errorf("%w: ClientCert %s / ClientKey %s: %v", ErrClientCert, c.ClientCert, c.ClientKey, err)
		}
		leaf := pair.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, m, fmt.Errorf("%w: ClientCert %s: %v", ErrClientCert, c.ClientCert, err)
			}
			pair.Leaf = leaf
		}
		if now.After(leaf.NotAfter) {
			return nil, m, fmt.Errorf("%w: ClientCert %s expired at %s; install a current one",
				ErrClientCert, c.ClientCert, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		cert = &pair
		m.ClientCert = leaf
	}
	t, err := upstream.NewTrust(roots, c.Pins, cert)
	if err != nil {
		return nil, m, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m.Pins = len(c.Pins)
	return t, m, nil
}

// Load reads the files of cfg once and builds a Trust from them, as the gateway does at
// start. The Material says what it holds.
func Load(cfg Config) (*upstream.Trust, Material, error) {
	if err := cfg.validate(); err != nil {
		return nil, Material{}, err
	}
	f, _, err := cfg.read()
	if err != nil {
		return nil, Material{}, err
	}
	return cfg.build(f, time.Now())
}

// ParseBundle parses a PEM bundle of certificates strictly: every block must be a
// certificate that parses, and no block may be cut short, so that a bundle caught half
// written is refused rather than loaded with CAs missing. Text between blocks, as some
// bundles carry, is ignored.
func ParseBundle(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := b; ; {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		n := len(certs) + 1
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, not CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %v", n, err)
		}
		certs = append(certs, c)
		rest = r
	}
	// pem.Decode skips a block that does not decode and goes on with the next one; counting
	// the blocks that begin catches what it skipped.
	if begun := bytes.Count(b, []byte("-----BEGIN ")); begun != len(certs) {
		return nil, fmt.Errorf("%d PEM blocks begin but %d decode: one is cut short or corrupt (still being written?)", begun, len(certs))
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return certs, nil
}
