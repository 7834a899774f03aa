package peers

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The embedded size report is the C library's RAM figure in every RESULTS.md: it must be
// today's library, not the one of the last `fotabench --c-size-report`. This runs the real
// script (the ESP8266 cross-compiler, which make test installs) for the same payloads and
// compares the tables.
func TestEmbeddedSizeReportIsTheCurrentLibrary(t *testing.T) {
	embedded, err := deviceSizes()
	if err != nil {
		t.Fatal(err)
	}
	src, err := cSourceDir()
	if err != nil {
		t.Fatal(err)
	}
	var payloads []string
	for p := range embedded.Rows {
		payloads = append(payloads, fmt.Sprint(p))
	}
	slices.Sort(payloads)
	cmd := exec.Command("bash", filepath.Join(src, "tools", "size-report.sh"))
	cmd.Env = append(os.Environ(), "PAYLOADS="+strings.Join(payloads, " "))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("size-report.sh: %v: %s (make test installs the ESP8266 toolchain)", err, stderr.String())
	}
	fresh, err := ParseSizeReport(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fresh.Rows, embedded.Rows) || !reflect.DeepEqual(fresh.Variants, embedded.Variants) {
		t.Fatalf("bench/peers/device-size.txt is out of date: run `go run ./bench/cmd/fotabench --c-size-report`\nembedded %+v\nnow      %+v", embedded.Rows, fresh.Rows)
	}
}
