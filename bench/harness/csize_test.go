package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot is a repository root whose size-report.sh is script.
func fakeRoot(t *testing.T, script string) string {
	root := t.TempDir()
	for _, d := range []string{"devicelib/c/tools", "bench/peers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "devicelib/c/tools/size-report.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestWriteCSizeReportKeepsTheScriptsTableForEveryChunk(t *testing.T) {
	root := fakeRoot(t, `echo "payloads: $PAYLOADS"
echo "payload code ctx body stack"
for p in $PAYLOADS; do echo "$p 7000 $((p + 800)) $((p + 16)) 480"; done
echo
`)
	if err := WriteCSizeReport(root, []int{64, 4096}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, csizePath))
	if !strings.Contains(string(b), "payloads: 64 4096") || !strings.Contains(string(b), "4096 7000 4896 4112 480") {
		t.Fatalf("wrote %q", b)
	}
}

func TestWriteCSizeReportSaysWhyWhenTheScriptCannotRun(t *testing.T) {
	root := fakeRoot(t, `echo "size: xtensa-lx106-elf-gcc is missing" >&2; exit 1`)
	err := WriteCSizeReport(root, []int{64})
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("error %v, want the script's reason", err)
	}
	// The file says so too, so the RAM table prints the reason instead of a figure.
	b, _ := os.ReadFile(filepath.Join(root, csizePath))
	if !strings.Contains(string(b), "xtensa-lx106-elf-gcc is missing") {
		t.Fatalf("wrote %q", b)
	}
}
