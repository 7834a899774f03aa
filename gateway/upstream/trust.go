package upstream

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// pinPrefix marks the one pin format accepted: HPKP's, which also names the hash.
const pinPrefix = "sha256/"

// Trust is one immutable snapshot of what the client trusts and presents: CA roots, SPKI
// pins and the client certificate. A Client uses one snapshot per connection; SetTrust
// swaps in a new one, so a reloader (certs/) builds a fresh Trust and never edits one.
type Trust struct {
	roots      *x509.CertPool // nil: system roots
	pins       map[[sha256.Size]byte]bool
	clientCert *tls.Certificate // nil: none
}

// LoadTrust reads the trust material named by cfg: CABundle, Pins, ClientCert and ClientKey.
// Errors wrap ErrConfig and name the field.
func LoadTrust(cfg Config) (*Trust, error) {
	var roots *x509.CertPool
	if cfg.CABundle != "" {
		pem, err := os.ReadFile(cfg.CABundle)
		if err != nil {
			return nil, fmt.Errorf("%w: CABundle: %v", ErrConfig, err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CABundle: %s holds no PEM certificate; point it at the vendor CA's PEM file", ErrConfig, cfg.CABundle)
		}
	}
	var cert *tls.Certificate
	if cfg.ClientCert != "" || cfg.ClientKey != "" {
		if cfg.ClientCert == "" || cfg.ClientKey == "" {
			return nil, fmt.Errorf("%w: ClientCert/ClientKey: only one is set; set both PEM files for mutual TLS, or neither", ErrConfig)
		}
		c, err := tls.LoadX509KeyPair(cfg.ClientCert, cfg.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("%w: ClientCert/ClientKey: %v", ErrConfig, err)
		}
		cert = &c
	}
	return NewTrust(roots, cfg.Pins, cert)
}

// NewTrust builds a snapshot from material already in memory. roots nil means the system
// roots; cert nil means no client certificate. Trust keeps the values: don't modify them.
func NewTrust(roots *x509.CertPool, pins []string, cert *tls.Certificate) (*Trust, error) {
	t := &Trust{roots: roots, clientCert: cert}
	if len(pins) > 0 {
		t.pins = make(map[[sha256.Size]byte]bool, len(pins))
	}
	for i, p := range pins {
		sum, err := parsePin(p)
		if err != nil {
			return nil, fmt.Errorf("%w: Pins[%d]: %v", ErrConfig, i, err)
		}
		t.pins[sum] = true
	}
	return t, nil
}

// PinOf returns cert's pin in the form Config.Pins takes. The same value comes from
//
//	openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
//	openssl dgst -sha256 -binary | base64
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

func parsePin(p string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	b64, ok := strings.CutPrefix(p, pinPrefix)
	if !ok {
		return sum, fmt.Errorf("%q: write pins as %q + base64 of the SHA-256 of the SubjectPublicKeyInfo", p, pinPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != sha256.Size {
		return sum, fmt.Errorf("%q: after %q want the standard base64 of 32 bytes (44 characters)", p, pinPrefix)
	}
	copy(sum[:], raw)
	return sum, nil
}

// tlsConfig is the client TLS configuration for this snapshot. Chain and host name are
// verified by crypto/tls as usual (InsecureSkipVerify stays false); VerifyConnection adds the
// pins on top, so a pin can narrow trust but never widen it.
func (t *Trust) tlsConfig() *tls.Config {
	cfg := &tls.Config{
		RootCAs:    t.roots,
		MinVersion: tls.VersionTLS12,
		// Offer our certificate whatever CAs the server lists: a server that names no CA, or
		// another one, still gets it, and refuses it itself if it must.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if t.clientCert == nil {
				return &tls.Certificate{}, nil
			}
			return t.clientCert, nil
		},
	}
	if len(t.pins) > 0 {
		cfg.VerifyConnection = t.verifyPins
	}
	return cfg
}

// verifyPins runs after crypto/tls verified the chain, so VerifiedChains holds only chains
// to our roots; a pin found in a certificate the server merely sent, outside them, proves
// nothing and is not looked at.
func (t *Trust) verifyPins(cs tls.ConnectionState) error {
	for _, chain := range cs.VerifiedChains {
		for _, cert := range chain {
			if t.pins[sha256.Sum256(cert.RawSubjectPublicKeyInfo)] {
				return nil
			}
		}
	}
	var seen []string
	if len(cs.VerifiedChains) > 0 {
		for _, cert := range cs.VerifiedChains[0] {
			seen = append(seen, PinOf(cert))
		}
	}
	return &CertError{
		Host:   cs.ServerName,
		Reason: ErrPinMismatch,
		Err:    fmt.Errorf("the chain's pins, leaf first, are %s", strings.Join(seen, ", ")),
	}
}
