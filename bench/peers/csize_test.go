package peers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const sampleSizeReport = `== fotagate device library on the ESP8266: xtensa-lx106-elf-gcc (12.2.0-14) 12.2.0, -Os, linked with --gc-sections ==
code = .text + .literal after relaxation, only what the API reaches; RAM = sizeof(struct fota_ctx)

payload   core crypto   code rodata   data    bss    ctx    body ctx-body  stack
64        4523   3215   7738    322      4      0    968     174     794    480
4096      4548   3215   7763    322      4      0   4904    4112     792    480
64+ed25519 4762  2976   10948   1236     4      0    968     174     794   1072

Per object at FOTA_MAX_PAYLOAD=64 (code rodata data bss):
  fota.o             4424 51 0 0
`

func TestParseSizeReportReadsTheTableByColumnName(t *testing.T) {
	rep, err := ParseSizeReport(strings.NewReader(sampleSizeReport))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Compiler != "xtensa-lx106-elf-gcc (12.2.0-14) 12.2.0" {
		t.Errorf("compiler %q", rep.Compiler)
	}
	want := map[int]CSize{64: {64, 7738, 968, 174, 480}, 4096: {4096, 7763, 4904, 4112, 480}}
	if len(rep.Rows) != len(want) {
		t.Fatalf("rows %v", rep.Rows)
	}
	for p, w := range want {
		if rep.Rows[p] != w {
			t.Errorf("payload %d: %+v, want %+v", p, rep.Rows[p], w)
		}
	}
	// A variant build's row is kept apart: it never replaces the default build's.
	if v := rep.Variants["ed25519"][64]; v != (CSize{64, 10948, 968, 174, 1072}) || len(rep.Variants) != 1 {
		t.Errorf("variants %+v", rep.Variants)
	}
}

func TestParseSizeReportRefusesWhatIsNotATable(t *testing.T) {
	for name, text := range map[string]string{
		"compiler missing": "size: xtensa-lx106-elf-gcc is missing (./.ci/deps installs gcc-xtensa-lx106)\n",
		"empty":            "",
		"header only":      "payload core ctx body stack code\n\n",
		"short row":        "payload code ctx body stack\n64 1 2 3\n",
		"not a number":     "payload code ctx body stack\n64 1 lots 3 4\n",
		"bad payload":      "payload code ctx body stack\nx+ed25519 1 2 3 4\n",
		"no ctx column":    "payload code body stack\n64 1 2 3\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSizeReport(strings.NewReader(text))
			if err == nil {
				t.Fatal("parsed")
			}
			if name == "compiler missing" && (!errors.Is(err, ErrNoSizeReport) || !strings.Contains(err.Error(), "is missing")) {
				t.Errorf("%v: want ErrNoSizeReport quoting the script", err)
			}
		})
	}
}

func TestTheEmbeddedSizeReportCoversEveryChunkOfAFullSweep(t *testing.T) {
	rep, err := deviceSizes()
	if err != nil {
		t.Fatalf("bench/peers/device-size.txt: %v (regenerate: go run ./bench/cmd/fotabench --c-size-report)", err)
	}
	for _, c := range []int{64, 128, 256, 512, 1024, 2048, 4096} {
		row, ok := rep.Rows[c]
		if !ok {
			t.Errorf("no row for %d B", c)
			continue
		}
		// The context holds the frame buffer: it grows with the chunk and never is below it.
		if row.Ctx < c || row.Body > row.Ctx {
			t.Errorf("%d B: ctx %d, body %d", c, row.Ctx, row.Body)
		}
		if r := (Fotagate{}).DeviceRAM(c); r.Bytes != row.Ctx || !strings.Contains(r.How, "sizeof(struct fota_ctx)") {
			t.Errorf("DeviceRAM(%d) = %+v, want the report's ctx %d", c, r, row.Ctx)
		}
	}
	if r := (Fotagate{}).DeviceRAM(100); r.Bytes != 0 || !strings.Contains(r.How, "not measured") {
		t.Errorf("DeviceRAM of a chunk the report lacks: %+v", r)
	}
}

// The HTTPS peer's device RAM uses BearSSL's context sizes on the ESP8266; the size report
// measures them with the same cross-compiler from Debian's headers, and they must agree.
func TestBearSSLContextsAreTheMeasuredOnes(t *testing.T) {
	var client, x509 int
	for _, line := range strings.Split(deviceSizeReport, "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "sizeof(br_ssl_client_context) %d B + sizeof(br_x509_minimal_context) %d B", &client, &x509); err == nil {
			break
		}
	}
	if client != bearSSLClientCtx || x509 != bearSSLX509Ctx {
		t.Fatalf("device-size.txt measures br_ssl_client_context %d B and br_x509_minimal_context %d B; https.go says %d and %d",
			client, x509, bearSSLClientCtx, bearSSLX509Ctx)
	}
}
