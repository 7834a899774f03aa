package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func verify(t *testing.T, ca *CA, c tls.Certificate, host string, at time.Time) error {
	t.Helper()
	_, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, CurrentTime: at})
	return err
}

func TestIssuedLeafVerifiesOnlyForItsHostsAndLifetime(t *testing.T) {
	ca, err := New("test root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.IssueFor(10*time.Minute, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := verify(t, ca, c, "localhost", now); err != nil {
		t.Fatalf("localhost: %v", err)
	}
	if err := verify(t, ca, c, "127.0.0.1", now); err != nil {
		t.Fatalf("127.0.0.1: %v", err)
	}
	if verify(t, ca, c, "example.org", now) == nil {
		t.Fatal("verified for a host it was not issued for")
	}
	if verify(t, ca, c, "localhost", now.Add(time.Hour)) == nil {
		t.Fatal("verified after it expired")
	}
	other, _ := New("other root", time.Hour)
	if verify(t, other, c, "localhost", now) == nil {
		t.Fatal("verified under another root")
	}
}

func TestWritePEMKeepsKeyPrivate(t *testing.T) {
	ca, _ := New("test root", time.Hour)
	c, _ := ca.IssueFor(time.Hour, "localhost")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := WritePEM(c, cert, key); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", st.Mode(), err)
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
}

func TestParseRebuildsTheRootAndRefusesAForeignKey(t *testing.T) {
	ca, _ := New("root", time.Hour)
	other, _ := New("other", time.Hour)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := other.KeyPEM()
	back, err := Parse(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := back.IssueFor(time.Hour, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, ca, leaf, "localhost", time.Now()); err != nil {
		t.Fatalf("a leaf of the parsed root does not verify under the original: %v", err)
	}
	c, _ := ca.IssueFor(time.Hour, "localhost")
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"another root's key", ca.CertPEM(), otherKey},
		{"a leaf, not a CA", leafPEM, keyPEM},
		{"key not PEM", ca.CertPEM(), []byte("key")},
		{"two certificates", append(ca.CertPEM(), other.CertPEM()...), keyPEM},
	} {
		if _, err := Parse(tc.cert, tc.key); err == nil {
			t.Errorf("%s: parsed", tc.name)
		}
	}
}

func csr(t *testing.T, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSignCSRTakesOnlyNamesAndKey(t *testing.T) {
	ca, _ := New("root", time.Hour)
	now := time.Now()
	// A request that also asks to be a CA, through an extension: it must not become one.
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	req := csr(t, &x509.CertificateRequest{
		DNSNames: []string{"gw.lan"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5")},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}},
	})
	leaf, err := ca.SignCSR(req, now, now.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if leaf.IsCA || leaf.BasicConstraintsValid {
		t.Fatal("a request's basic constraints were copied")
	}
	if !leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("leaf outlives its root: %s > %s", leaf.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "10.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	tampered := csr(t, &x509.CertificateRequest{DNSNames: []string{"gw.lan"}})
	tampered.Signature[len(tampered.Signature)-1] ^= 1
	for name, r := range map[string]*x509.CertificateRequest{
		"bad signature": tampered,
		"no names":      csr(t, &x509.CertificateRequest{}),
		"e-mail name":   csr(t, &x509.CertificateRequest{DNSNames: []string{"gw.lan"}, EmailAddresses: []string{"a@b"}}),
	} {
		if _, err := ca.SignCSR(r, now, now.Add(time.Hour)); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}
