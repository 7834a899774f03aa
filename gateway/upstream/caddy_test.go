//go:build linux

package upstream

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fotagate/fotagate/gateway/upstream/caddytest"
)

// caddyfile serves one directory over HTTPS on one loopback port, TCP for h1/h2 and UDP for
// h3, with the test's certificate. Nothing may leave the test's temp dir or loopback: no
// admin endpoint, no automatic HTTPS (so no :80 redirect listener, no ACME, no local CA
// installed into the system trust store), storage under the temp dir.
const caddyfile = `{
	admin off
	auto_https off
	skip_install_trust
	storage file_system {
		root %[1]q
	}
	servers {
		protocols h1 h2 h3
	}
}

https://127.0.0.1:%[2]d {
	bind 127.0.0.1
	tls %[3]q %[4]q
	root * %[5]q
	file_server
}
`

// startCaddy runs Debian's caddy serving site and returns its https base URL once it
// answers (caddytest: a free loopback port, killed with the test).
func startCaddy(t *testing.T, ca *testCA, site, certPath, keyPath string) string {
	t.Helper()
	cfg := testConfig(ca, TransportH2)
	cfg.Retries = -1
	probe := newTestClient(t, cfg)
	defer probe.Close()
	base := func(port int) string { return "https://127.0.0.1:" + strconv.Itoa(port) }
	port, _ := caddytest.Start(t, 15*time.Second, func(port int, dir string) *exec.Cmd {
		conf := filepath.Join(dir, "Caddyfile")
		text := fmt.Sprintf(caddyfile, filepath.Join(dir, "storage"), port, certPath, keyPath, site)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return exec.Command("caddy", "run", "--config", conf, "--adapter", "caddyfile")
	}, func(port int, _ string) error {
		_, err := probe.FetchDoc(ctxT(t), base(port)+"/manifest.json", "", 0)
		return err
	})
	return base(port)
}

func TestCaddyServesOverH2AndH3(t *testing.T) {
	ca := newCA(t, "caddy-ca")
	cert := ca.leaf(t, leafOpts{})
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o755); err != nil {
		t.Fatal(err)
	}
	fw := content(300_000)
	manifest := []byte(`{"version":"1.2.3","size":300000}`)
	for name, b := range map[string][]byte{"fw.bin": fw, "manifest.json": manifest} {
		if err := os.WriteFile(filepath.Join(site, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	certPath, keyPath := writeKeyPair(t, dir, cert)
	base := startCaddy(t, ca, site, certPath, keyPath)

	for _, tc := range []struct {
		transport string
		want      []string // protocols of: manifest, manifest again (304), full image, resumed image
	}{
		{TransportH2, []string{"h2", "h2", "h2", "h2"}},
		{TransportH3, []string{"h3", "h3", "h3", "h3"}},
		// caddy advertises h3 on its own port with Alt-Svc; auto switches after one answer.
		{TransportAuto, []string{"h2", "h3", "h3", "h3"}},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			cfg := testConfig(ca, tc.transport)
			cfg.Pins = []string{PinOf(cert.Leaf)}
			c := newTestClient(t, cfg)
			ctx := ctxT(t)
			var got []string

			doc, err := c.FetchDoc(ctx, base+"/manifest.json", "", 0)
			if err != nil || !bytes.Equal(doc.Body, manifest) || doc.ETag == "" {
				t.Fatalf("manifest: %+v, %v", doc, err)
			}
			got = append(got, doc.Proto)
			doc, err = c.FetchDoc(ctx, base+"/manifest.json", doc.ETag, 0)
			if err != nil || !doc.NotModified {
				t.Fatalf("manifest with its ETag: %+v, %v", doc, err)
			}
			got = append(got, doc.Proto)

			var img bytes.Buffer
			proto, err := c.Download(ctx, base+"/fw.bin", &img, 0, int64(len(fw)))
			if err != nil || !bytes.Equal(img.Bytes(), fw) {
				t.Fatalf("image: %d bytes, %v", img.Len(), err)
			}
			got = append(got, proto)

			var rest bytes.Buffer
			proto, err = c.Download(ctx, base+"/fw.bin", &rest, 123_456, int64(len(fw)))
			if err != nil || !bytes.Equal(rest.Bytes(), fw[123_456:]) {
				t.Fatalf("resumed image: %d bytes, %v", rest.Len(), err)
			}
			got = append(got, proto)

			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("protocols %v, want %v", got, tc.want)
			}

			_, err = c.Download(ctx, base+"/fw.bin", &bytes.Buffer{}, 0, int64(len(fw))-1)
			mustErrIs(t, err, ErrTooLarge)
		})
	}
}
