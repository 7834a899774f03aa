package peers

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// deviceSizeReport is the output of devicelib/c/tools/size-report.sh for every chunk size of
// a full sweep, as `fotabench --c-size-report` last wrote it: the C device library measured
// on the ESP8266's compiler, the source of fotagate's device RAM column.
//
//go:embed device-size.txt
var deviceSizeReport string

// CSize is one row of the C library's size report: what the device library costs on the
// ESP8266 at one FOTA_MAX_PAYLOAD.
type CSize struct {
	Payload int // FOTA_MAX_PAYLOAD: the chunk
	Code    int // bytes of flash code the API reaches
	Ctx     int // sizeof(struct fota_ctx): the session's RAM, frame buffer included
	Body    int // the frame buffer's share of Ctx
	Stack   int // deepest stack below an API call, platform callbacks excluded
}

// SizeReport is a parsed size report.
type SizeReport struct {
	Compiler string        // the report's first line names the compiler
	Rows     map[int]CSize // the default build, by payload
	// Variants holds the rows of other builds ("64+ed25519": variant "ed25519"), by variant
	// and payload.
	Variants map[string]map[int]CSize
}

// ErrNoSizeReport is returned when the report holds no table: the script could not run (it
// says why, for example that xtensa-lx106-elf-gcc is missing).
var ErrNoSizeReport = errors.New("no size table in the C size report")

// ParseSizeReport reads the table of size-report.sh: a header line starting "payload" that
// names the columns, then one row per payload up to the first blank line.
func ParseSizeReport(r io.Reader) (SizeReport, error) {
	rep := SizeReport{Rows: map[int]CSize{}, Variants: map[string]map[int]CSize{}}
	sc := bufio.NewScanner(r)
	var cols map[string]int
	var first string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if first == "" {
			first = line
		}
		if c, ok := strings.CutPrefix(line, "== fotagate device library on the ESP8266: "); ok {
			c, _, _ = strings.Cut(c, ", -O")
			rep.Compiler = c
		}
		fields := strings.Fields(line)
		switch {
		case cols == nil && len(fields) > 0 && fields[0] == "payload":
			cols = map[string]int{}
			for i, f := range fields {
				cols[f] = i
			}
			for _, need := range []string{"code", "ctx", "body", "stack"} {
				if _, ok := cols[need]; !ok {
					return rep, fmt.Errorf("size report: no %q column in %q", need, line)
				}
			}
		case cols != nil && len(fields) == 0:
			if len(rep.Rows) == 0 {
				return rep, fmt.Errorf("%w: a header and no rows", ErrNoSizeReport)
			}
			return rep, nil
		case cols != nil:
			if len(fields) != len(cols) {
				return rep, fmt.Errorf("size report: row %q has %d fields, the header %d", line, len(fields), len(cols))
			}
			num := func(name string) (int, error) { return strconv.Atoi(fields[cols[name]]) }
			// The payload column is "512" for the default build, "512+ed25519" for a variant.
			payload, variant, _ := strings.Cut(fields[cols["payload"]], "+")
			fields[cols["payload"]] = payload
			var row CSize
			var errs []error
			for _, f := range []struct {
				name string
				dst  *int
			}{{"payload", &row.Payload}, {"code", &row.Code}, {"ctx", &row.Ctx}, {"body", &row.Body}, {"stack", &row.Stack}} {
				v, err := num(f.name)
				*f.dst = v
				errs = append(errs, err)
			}
			if err := errors.Join(errs...); err != nil {
				return rep, fmt.Errorf("size report: row %q: %w", line, err)
			}
			if variant == "" {
				rep.Rows[row.Payload] = row
				continue
			}
			if rep.Variants[variant] == nil {
				rep.Variants[variant] = map[int]CSize{}
			}
			rep.Variants[variant][row.Payload] = row
		}
	}
	if err := sc.Err(); err != nil {
		return rep, err
	}
	if len(rep.Rows) == 0 {
		return rep, fmt.Errorf("%w (it says: %q)", ErrNoSizeReport, first)
	}
	return rep, nil
}

// deviceSizes is the embedded report, parsed once per call: it is small.
func deviceSizes() (SizeReport, error) {
	return ParseSizeReport(strings.NewReader(deviceSizeReport))
}
