package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/example from the fixed example inputs")

// The example release of FORMAT.md 9. Its key is derived from a public string: never trust it.
var (
	exampleDir   = filepath.Join("testdata", "example")
	exampleNow   = time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)
	exampleImage = []byte("fotagate example firmware image; not a real image\n")
	exampleOpts  = PublishOptions{
		Class:   "esp-relay",
		Version: "1.4.2",
		Seq:     42,
		MinSeq:  40,
		Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
)

func exampleKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("fotagate example vendor key; public, never use it to sign firmware"))
	return ed25519.NewKeyFromSeed(seed[:])
}

// The committed example must be exactly what Publish produces today (Ed25519 is
// deterministic), so a change to the format shows up as a diff in testdata and FORMAT.md.
// Regenerate with: go test ./gateway/manifest -run TestExampleVectorsAreCurrent -update
func TestExampleVectorsAreCurrent(t *testing.T) {
	doc, sig, err := Publish(bytes.NewReader(exampleImage), exampleOpts, exampleKey())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"firmware.bin": exampleImage,
		DocName:        doc,
		SigName:        sig,
		"vendor.pub":   MarshalPublicKey(exampleKey().Public().(ed25519.PublicKey)),
	}
	for name, want := range files {
		path := filepath.Join(exampleDir, name)
		if *update {
			if err := os.MkdirAll(exampleDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := readFile(t, path); !bytes.Equal(got, want) {
			t.Errorf("%s is stale; regenerate with -update and update FORMAT.md 9:\n%s", path, want)
		}
	}
}

// The committed example verifies as a gateway would fetch it.
func TestExampleVerifies(t *testing.T) {
	pubKey, err := LoadPublicKey(filepath.Join(exampleDir, "vendor.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Keys: []ed25519.PublicKey{pubKey}, Now: func() time.Time { return exampleNow }}
	m, err := v.Verify(readFile(t, filepath.Join(exampleDir, DocName)), readFile(t, filepath.Join(exampleDir, SigName)), "esp-relay")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.VerifyImage(bytes.NewReader(readFile(t, filepath.Join(exampleDir, "firmware.bin")))); err != nil {
		t.Fatal(err)
	}
}

// FORMAT.md quotes the example files verbatim, so the spec cannot drift from the code.
func TestFormatDocQuotesExample(t *testing.T) {
	spec := string(readFile(t, "FORMAT.md"))
	for _, name := range []string{DocName, SigName, "vendor.pub"} {
		if content := string(readFile(t, filepath.Join(exampleDir, name))); !strings.Contains(spec, content) {
			t.Errorf("FORMAT.md does not quote testdata/example/%s:\n%s", name, content)
		}
	}
	m, err := parse(readFile(t, filepath.Join(exampleDir, DocName)))
	if err != nil {
		t.Fatal(err)
	}
	st := m.Statement()
	statement, err := st.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	for what, b := range map[string][]byte{
		"image statement":            statement,
		"document signature message": signedMessage(readFile(t, filepath.Join(exampleDir, DocName)))[:32],
	} {
		if dump := hexRows(b); !strings.Contains(spec, dump) {
			t.Errorf("FORMAT.md does not show the example's %s as\n%s", what, dump)
		}
	}
	if !strings.Contains(spec, `"fotagate manifest v1\x00"`) || !strings.Contains(spec, docContext[:len(docContext)-1]) {
		t.Error("FORMAT.md does not state the document signature context")
	}
}

// hexRows formats b as FORMAT.md shows bytes: 16 per row, hex then ASCII.
func hexRows(b []byte) string {
	var out strings.Builder
	for i := 0; i < len(b); i += 16 {
		row := b[i:min(i+16, len(b))]
		var hexes, text []string
		for _, c := range row {
			hexes = append(hexes, fmt.Sprintf("%02x", c))
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			text = append(text, string(rune(c)))
		}
		fmt.Fprintf(&out, "%-47s  %s\n", strings.Join(hexes, " "), strings.Join(text, ""))
	}
	return out.String()
}
