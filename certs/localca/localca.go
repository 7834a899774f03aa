// Package localca is a small certificate authority for LAN-only use: it makes a root and
// issues leaf certificates for host names and IP addresses. The gateway's demo uses it for its
// in-process upstream, tests use it for real TLS servers, and certs/gatewaytls builds the
// gateway's own LAN certificates on it (Parse and KeyPEM persist its root, SignCSR signs the
// requests certmagic makes).
package localca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"slices"
	"time"
)

// CA is a root certificate and its key.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New makes a root valid for validity from now.
func New(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"fotagate local CA"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("localca: crypto/rand failed: " + err.Error())
	}
	return n
}

// Leaf describes a certificate to issue. Zero NotBefore means now minus a minute.
type Leaf struct {
	Hosts     []string // DNS names and IP addresses
	NotBefore time.Time
	NotAfter  time.Time
	Client    bool // a client certificate (mTLS) instead of a server one
}

// Issue signs a new leaf with a fresh P-256 key.
func (ca *CA) Issue(l Leaf) (tls.Certificate, error) {
	if len(l.Hosts) == 0 && !l.Client {
		return tls.Certificate{}, errors.New("localca: a server certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Minute)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "fotagate"},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if l.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range l.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(l.Hosts) > 0 {
		tmpl.Subject.CommonName = l.Hosts[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// IssueFor issues a server certificate for hosts, valid for validity.
func (ca *CA) IssueFor(validity time.Duration, hosts ...string) (tls.Certificate, error) {
	return ca.Issue(Leaf{Hosts: hosts, NotAfter: time.Now().Add(validity)})
}

// Pool returns a pool that trusts only this root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CertPEM is the root certificate in PEM, for browsers and CA bundle files.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteCertPEM writes the root certificate to path (readable by all: it is public).
func (ca *CA) WriteCertPEM(path string) error { return os.WriteFile(path, ca.CertPEM(), 0o644) }

// WritePEM writes a leaf's certificate chain and key as PEM files; the key file is 0600.
func WritePEM(c tls.Certificate, certPath, keyPath string) error {
	var certs []byte
	for _, der := range c.Certificate {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return fmt.Errorf("localca: %w", err)
	}
	if err := os.WriteFile(certPath, certs, 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
}

// KeyPEM is the root's private key in PKCS #8 PEM. It is the one secret of the CA: keep it in
// a file only its owner can read.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Parse rebuilds a CA from its root certificate and its key as CertPEM and KeyPEM wrote
// them. It fails unless the certificate is a CA and the key is its key.
func Parse(certPEM, keyPEM []byte) (*CA, error) {
	cb, rest := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("localca: root certificate: want exactly one PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("localca: root certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("localca: root certificate is not a CA certificate")
	}
	kb, rest := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("localca: root key: want exactly one PEM PRIVATE KEY block (PKCS #8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("localca: root key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("localca: root key: %T, want an ECDSA key", k)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("localca: root key does not belong to the root certificate")
	}
	return &CA{Cert: cert, key: key}, nil
}

// SignCSR issues a server certificate for the DNS names and IP addresses of csr, with csr's
// public key, valid from notBefore to notAfter (cut to the root's own expiry). The request's
// signature is checked; nothing else of it (subject, extensions, e-mail or URI names) is
// copied, so a request can only ask for names and a key. Which names may be asked for is the
// caller's decision.
func (ca *CA) SignCSR(csr *x509.CertificateRequest, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("localca: certificate request: %w", err)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses) == 0 {
		return nil, errors.New("localca: certificate request names no DNS name or IP address")
	}
	if len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return nil, errors.New("localca: certificate request asks for e-mail or URI names; only DNS names and IP addresses are issued")
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("localca: empty validity %s to %s (has the root expired?)", notBefore, notAfter)
	}
	usage := x509.KeyUsageDigitalSignature
	if csr.PublicKeyAlgorithm == x509.RSA {
		usage |= x509.KeyUsageKeyEncipherment // RSA key exchange in TLS 1.2
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     usage,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     slices.Clone(csr.DNSNames),
		IPAddresses:  slices.Clone(csr.IPAddresses),
	}
	if len(csr.DNSNames) > 0 {
		tmpl.Subject.CommonName = csr.DNSNames[0]
	} else {
		tmpl.Subject.CommonName = csr.IPAddresses[0].String()
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	return x509.ParseCertificate(der)
}
