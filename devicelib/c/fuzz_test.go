package c_test

// Tests of the fuzz harness (fuzz/fuzz_device.c) itself; the fuzzing runs in `make fuzz-smoke`,
// which `make test` runs. These pin what a time-bounded run cannot: that the committed seeds
// are the vectors' frames, and that the harness's checks catch a device that breaks the
// guarantee they stand for.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The committed corpus, offer.inc and vendor_key.inc are what fuzz/seeds.go makes from v1.json
// now: a change of the vectors must be followed by `cd fuzz && go run seeds.go`.
func TestFuzzSeedsMatchVectors(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "run", "seeds.go", "-dir", out)
	cmd.Dir = "fuzz"
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run seeds.go: %v\n%s", err, o)
	}
	var fresh []string
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		fresh = append(fresh, rel)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join("fuzz", rel))
		if err != nil {
			t.Errorf("%s: %v (run seeds.go)", rel, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("fuzz/%s differs from what seeds.go makes now", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And nothing stale beside them.
	for _, target := range []string{"raw", "session", "sealed", "signed"} {
		entries, err := os.ReadDir(filepath.Join("fuzz/corpus", target))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			t.Errorf("fuzz/corpus/%s is empty", target)
		}
		for _, e := range entries {
			rel := filepath.Join("corpus", target, e.Name())
			found := false
			for _, f := range fresh {
				found = found || f == rel
			}
			if !found {
				t.Errorf("fuzz/%s is not made by seeds.go", rel)
			}
		}
	}
}

// buildSealedFuzzer builds the FUZZ_SEALED target with the Makefile's flags from the tree at
// root into dir.
func buildSealedFuzzer(t *testing.T, root, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("clang"); err != nil {
		t.Fatal("clang is missing: run ./.ci/deps (clang, libclang-rt-dev)")
	}
	bin := filepath.Join(dir, "fuzz_sealed")
	cmd := exec.Command("make", "-s", "BUILD="+dir, bin)
	cmd.Dir = root
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fuzzer: %v\n%s", err, o)
	}
	return bin
}

// A device that reports FOTA_EV_DONE for an image other than the manifest's is what the
// harness exists to catch. The seed "vector-session" with one image byte changed must end in
// digest_mismatch on the real library and crash the harness on a copy whose verification
// always succeeds; the unchanged seed passes on both.
func TestFuzzHarnessCatchesDoneWithWrongImage(t *testing.T) {
	seed, err := os.ReadFile("fuzz/corpus/sealed/vector-session")
	if err != nil {
		t.Fatal(err)
	}
	// Layout: split count 0, flags, Offer record, then the first Data record, whose first
	// payload byte is flipped.
	offerLen := int(seed[3])<<8 | int(seed[4])
	data := 2 + 3 + offerLen
	if seed[data] != 0x04 {
		t.Fatalf("seed layout changed: byte %d is %#x, want a Data record", data, seed[data])
	}
	bad := bytes.Clone(seed)
	bad[data+3] ^= 0x01
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	flipped := filepath.Join(dir, "flipped")
	if err := os.WriteFile(good, seed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flipped, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	// A copy of the library whose verification ignores the digests.
	broken := t.TempDir()
	for _, d := range []string{"include", "src", "fuzz"} {
		if err := os.CopyFS(filepath.Join(broken, d), os.DirFS(d)); err != nil {
			t.Fatal(err)
		}
	}
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	edit(t, filepath.Join(broken, "src/fota.c"), "match &= fota_ct_equal(ctx->ad, ctx->m.digest, FOTA_DIGEST_SIZE);",
		"(void)fota_ct_equal(ctx->ad, ctx->m.digest, FOTA_DIGEST_SIZE);")

	orig := buildSealedFuzzer(t, ".", filepath.Join(dir, "real"))
	mutant := buildSealedFuzzer(t, broken, filepath.Join(broken, "build"))
	runOne := func(bin, input string) (string, error) {
		o, err := exec.Command(bin, "-runs=1", input).CombinedOutput()
		return string(o), err
	}
	for _, c := range []struct {
		bin, input string
		crash      bool
	}{
		{orig, good, false},
		{orig, flipped, false},
		{mutant, good, false},
		{mutant, flipped, true},
	} {
		out, err := runOne(c.bin, c.input)
		name := filepath.Base(filepath.Dir(c.bin)) + " on " + filepath.Base(c.input)
		if c.crash {
			if err == nil || !strings.Contains(out, "deadly signal") {
				t.Errorf("%s: want the harness to abort, got err %v:\n%s", name, err, out)
			}
		} else if err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}
