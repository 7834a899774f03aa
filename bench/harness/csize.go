package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fotagate/fotagate/bench/peers"
)

// csizePath is where the C library's size report lives for the bench, relative to the
// repository root; bench/peers embeds it.
const csizePath = "bench/peers/device-size.txt"

// WriteCSizeReport runs devicelib/c/tools/size-report.sh under root for every chunk size and
// writes its output to bench/peers/device-size.txt. When the script cannot run (no
// xtensa-lx106-elf-gcc), the file says why, and the RAM table says "not measured" with that
// reason instead of a figure; the error is returned as well.
func WriteCSizeReport(root string, chunks []int) error {
	var sizes []string
	for _, c := range chunks {
		sizes = append(sizes, strconv.Itoa(c))
	}
	cmd := exec.Command("bash", filepath.Join(root, "devicelib/c/tools/size-report.sh"))
	cmd.Env = append(os.Environ(), "PAYLOADS="+strings.Join(sizes, " "))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	runErr := cmd.Run()
	text := out.Bytes()
	if runErr != nil {
		text = fmt.Appendf(nil, "size-report.sh failed: %v: %s\n", runErr, strings.TrimSpace(stderr.String()))
	}
	if err := os.WriteFile(filepath.Join(root, csizePath), text, 0o644); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("devicelib/c/tools/size-report.sh: %v: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	_, err := peers.ParseSizeReport(bytes.NewReader(text))
	return err
}
