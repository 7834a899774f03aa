//go:build linux

package upstream

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
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

// syncBuffer collects caddy's log for a failing test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeLoopbackPort finds a port free on 127.0.0.1 for both TCP and UDP. Another process
// may still take it before caddy binds it; startCaddy then tries again.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		_ = l.Close()
		if err == nil {
			_ = pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return 0
}

// startCaddy runs Debian's caddy serving site and returns its https base URL once it
// answers. caddy is killed when the test ends, and by the kernel if the test binary dies
// first (Pdeathsig), so no run leaves one behind.
func startCaddy(t *testing.T, ca *testCA, site, certPath, keyPath string) string {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatalf("caddy is not installed (%v): run `make deps`, which installs Debian's caddy package, then rerun the tests", err)
	}
	dir := t.TempDir()
	for try := 1; ; try++ {
		if base, ok := runCaddy(t, bin, ca, dir, try, site, certPath, keyPath); ok {
			return base
		}
		if try == 3 {
			t.Fatal("caddy exited three times; see its logs above")
		}
	}
}

// runCaddy starts caddy once on a free port; false means it exited, most likely because
// another process took the port between our check and its bind.
func runCaddy(t *testing.T, bin string, ca *testCA, dir string, try int, site, certPath, keyPath string) (string, bool) {
	t.Helper()
	port := freeLoopbackPort(t)
	conf := filepath.Join(dir, fmt.Sprintf("Caddyfile.%d", try))
	text := fmt.Sprintf(caddyfile, filepath.Join(dir, "storage"), port, certPath, keyPath, site)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("caddy log (try %d):\n%s", try, logs.String())
		}
	})

	base := "https://127.0.0.1:" + strconv.Itoa(port)
	cfg := testConfig(ca, TransportH2)
	cfg.Retries = -1
	probe := newTestClient(t, cfg)
	defer probe.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := probe.FetchDoc(ctxT(t), base+"/manifest.json", "", 0)
		if err == nil {
			return base, true
		}
		select {
		case <-exited:
			t.Logf("caddy exited on port %d: %v\n%s", port, cmd.ProcessState, logs.String())
			return "", false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not answer on %s within 15s: %v\n%s", base, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
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
