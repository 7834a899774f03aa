package localca

import (
	"crypto/tls"
	"crypto/x509"
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
