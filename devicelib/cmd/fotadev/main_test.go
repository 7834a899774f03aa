package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fotagate/fotagate/devicelib/internal/testgw"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
	"github.com/fotagate/fotagate/protocol"
)

const (
	testID    = "dev-7"
	testClass = "esp8266-a"
)

var testPSK = [protocol.KeySize]byte{7, 7, 7, 1, 2, 3}

// files writes a key file with the gateway's provisioning writer and returns the flags
// naming it and fresh flash and state files.
func files(t *testing.T) (dir string, args []string) {
	t.Helper()
	dir = t.TempDir()
	key := filepath.Join(dir, "device.json")
	if err := registry.WriteKeyFile(key, registry.Device{ID: testID, Class: testClass, PSK: registry.Key(testPSK)}); err != nil {
		t.Fatal(err)
	}
	return dir, []string{"--key", key, "--flash", filepath.Join(dir, "dev.flash"),
		"--state", filepath.Join(dir, "dev.state"), "--flash-size", "131072"}
}

func image(n int) []byte {
	img := make([]byte, n)
	for i := range img {
		img[i] = byte(i*7 + i>>8)
	}
	return img
}

// fotadev runs the command in-process and decodes its JSON report.
func fotadev(t *testing.T, args ...string) (int, report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	var r report
	if strings.Contains(strings.Join(args, " "), "--json") && code != exitUsage {
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("exit %d: stdout is not one JSON object: %v\n%s\nstderr: %s", code, err, stdout.String(), stderr.String())
		}
	}
	return code, r, stderr.String()
}

func TestInstallsThenReportsUpToDateAsJSON(t *testing.T) {
	img := image(50<<10 + 3)
	gw := testgw.Start(t, protocol.MaxPayload, map[string][protocol.KeySize]byte{testID: testPSK})
	gw.Serve(img, testgw.Image(img, testClass, 3, nil))
	dir, args := files(t)
	args = append(args, "--gateway", gw.Addr, "--json", "--max-payload", "1024")

	code, r, stderr := fotadev(t, args...)
	sum := sha256.Sum256(img)
	if code != exitOK || r.Outcome.String() != "installed" || r.Seq != 3 || r.Size != uint32(len(img)) ||
		r.SHA256 != hex.EncodeToString(sum[:]) || r.Running != 3 || r.Pending != 0 || r.DeviceID != testID || r.BootCounter != 1 {
		t.Fatalf("exit %d, report %+v, stderr %s", code, r, stderr)
	}
	if s := gw.Next(t); s.Report == nil || s.Report.Code != protocol.CodeOK {
		t.Fatalf("gateway saw %+v", s)
	}
	slot, _ := os.ReadFile(filepath.Join(dir, "dev.flash"))
	if len(slot) != 131072 || !bytes.Equal(slot[:len(img)], img) {
		t.Fatal("the flash file does not hold the image")
	}
	if fi, err := os.Stat(filepath.Join(dir, "dev.state")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}

	code, r, _ = fotadev(t, args...)
	if code != exitOK || r.Outcome.String() != "up_to_date" || r.Running != 3 || r.BootCounter != 2 {
		t.Fatalf("second run: exit %d, %+v", code, r)
	}
	gw.Next(t)
}

func TestResumesAcrossRunsAfterACut(t *testing.T) {
	img := image(80 << 10)
	gw := testgw.Start(t, protocol.MaxPayload, map[string][protocol.KeySize]byte{testID: testPSK})
	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	gw.SetCut(func(n int) int64 {
		if n == 1 {
			return 50 << 10 // past the first durable point (devicelib.DefaultAckEvery)
		}
		return 0
	})
	_, args := files(t)
	args = append(args, "--gateway", gw.Addr, "--json")
	code, r, _ := fotadev(t, args...)
	if code != exitError || r.Outcome.String() != "failed" || r.Reason != "truncated" || r.Error == "" {
		t.Fatalf("cut run: exit %d, %+v", code, r)
	}
	gw.Next(t)
	code, r, _ = fotadev(t, args...)
	if code != exitOK || r.Outcome.String() != "installed" || r.ResumedFrom == 0 || r.ResumedFrom+r.Received != uint32(len(img)) {
		t.Fatalf("resumed run: exit %d, %+v", code, r)
	}
	if s := gw.Next(t); s.Accept.Offset != r.ResumedFrom {
		t.Fatalf("gateway's Accept at %d, device resumed at %d", s.Accept.Offset, r.ResumedFrom)
	}
}

func TestVendorKeyMakesSignaturesMandatory(t *testing.T) {
	img := image(8 << 10)
	pub, key, _ := ed25519.GenerateKey(nil)
	dir, args := files(t)
	pubFile := filepath.Join(dir, "vendor.pub")
	if err := manifest.SavePublicKey(pubFile, pub); err != nil {
		t.Fatal(err)
	}
	gw := testgw.Start(t, protocol.MaxPayload, map[string][protocol.KeySize]byte{testID: testPSK})
	args = append(args, "--gateway", gw.Addr, "--json", "--vendor-key", pubFile)

	gw.Serve(img, testgw.Image(img, testClass, 2, nil))
	code, r, stderr := fotadev(t, args...)
	if code != exitError || r.Outcome.String() != "refused" || r.Reason != "bad_signature" || !strings.Contains(stderr, "signature") {
		t.Fatalf("unsigned: exit %d, %+v, %s", code, r, stderr)
	}
	gw.Next(t)
	gw.Serve(img, testgw.Image(img, testClass, 2, key))
	if code, r, _ := fotadev(t, args...); code != exitOK || r.Outcome.String() != "installed" {
		t.Fatalf("signed: exit %d, %+v", code, r)
	}
	gw.Next(t)
}

func TestRefusesKeyFileOthersCanRead(t *testing.T) {
	_, args := files(t)
	os.Chmod(args[1], 0o644)
	code, _, stderr := fotadev(t, append(args, "--gateway", "127.0.0.1:1")...)
	if code != exitError || !strings.Contains(stderr, "chmod 600 "+args[1]) {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}

func TestHumanOutputAndProgressBar(t *testing.T) {
	img := image(40 << 10)
	gw := testgw.Start(t, protocol.MaxPayload, map[string][protocol.KeySize]byte{testID: testPSK})
	gw.Serve(img, testgw.Image(img, testClass, 5, nil))
	_, args := files(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append(args, "--gateway", gw.Addr, "--progress", "always"), &stdout, &stderr)
	if code != exitOK || !strings.HasPrefix(stdout.String(), "installed image 5 (40960 bytes") || !strings.Contains(stdout.String(), "now running 5") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	t.Logf("stdout: %s\nstderr: %q", stdout.String(), stderr.String())
	if !strings.Contains(stderr.String(), "100%") || !strings.Contains(stderr.String(), "image 5") {
		t.Fatalf("no progress bar on stderr: %q", stderr.String())
	}
	gw.Next(t)
}

func TestUsageErrorsExitWith2(t *testing.T) {
	_, args := files(t)
	for _, tc := range [][]string{
		{"--no-such-flag"},
		{"--flash", "f", "--state", "s"},
		append(append([]string{}, args...), "extra"),
		append(append([]string{}, args...), "--progress", "sometimes"),
		append(append([]string{}, args...), "--timeout", "0s"),
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc, &stdout, &stderr); code != exitUsage || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", tc, code, stderr.String())
		}
	}
}

func TestUnreachableGatewayIsAnError(t *testing.T) {
	_, args := files(t)
	code, r, stderr := fotadev(t, append(args, "--gateway", "127.0.0.1:1", "--json")...)
	if code != exitError || r.Outcome.String() != "failed" || !strings.Contains(stderr, "connecting to the gateway") {
		t.Fatalf("exit %d, %+v, %s", code, r, stderr)
	}
}
