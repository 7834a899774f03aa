package manifest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPublishRejects(t *testing.T) {
	key := testKey("vendor")
	tests := []struct {
		name  string
		edit  func(*PublishOptions)
		image []byte
		key   []byte
		want  error
	}{
		{name: "empty image", image: []byte{}, want: ErrMalformed},
		{name: "no expiry", edit: func(o *PublishOptions) { o.Expires = time.Time{} }, want: ErrMalformed},
		{name: "invalid class", edit: func(o *PublishOptions) { o.Class = "esp relay" }, want: ErrMalformed},
		{name: "empty version", edit: func(o *PublishOptions) { o.Version = "" }, want: ErrMalformed},
		{name: "version with a control byte", edit: func(o *PublishOptions) { o.Version = "1.4\x1b[2J" }, want: ErrMalformed},
		{name: "min_seq above seq", edit: func(o *PublishOptions) { o.MinSeq = o.Seq + 1 }, want: ErrMalformed},
		{name: "http image URL", edit: func(o *PublishOptions) { o.URL = "http://fw.example.com/fw.bin" }, want: ErrInsecureURL},
		{name: "image URL with credentials", edit: func(o *PublishOptions) { o.URL = "https://u:p@fw.example.com/fw.bin" }, want: ErrMalformed},
		{name: "truncated private key", key: key[:32], want: ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.edit != nil {
				tt.edit(&opts)
			}
			image := testImage
			if tt.image != nil {
				image = tt.image
			}
			k := key
			if tt.key != nil {
				k = tt.key
			}
			doc, sig, err := Publish(bytes.NewReader(image), opts, k)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Publish error = %v, want %v", err, tt.want)
			}
			if doc != nil || sig != nil {
				t.Error("Publish returned output along with an error")
			}
		})
	}
}

// The uint32 limit is exercised through publish's limit parameter: hashing 4 GiB per test
// run would prove nothing more.
func TestPublishRejectsImageOverSizeLimit(t *testing.T) {
	key := testKey("vendor")
	limit := int64(len(testImage))
	if _, _, err := publish(bytes.NewReader(testImage), testOptions(), key, limit); err != nil {
		t.Fatalf("image of exactly the limit: %v", err)
	}
	over := append(bytes.Clone(testImage), 0)
	if _, _, err := publish(bytes.NewReader(over), testOptions(), key, limit); !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("image one byte over the limit: error = %v, want ErrImageTooLarge", err)
	}
	if MaxImageSize != 1<<32-1 {
		t.Errorf("MaxImageSize = %d, want the uint32 maximum", MaxImageSize)
	}
}

func TestPublishIsDeterministic(t *testing.T) {
	key := testKey("vendor")
	doc1, sig1 := mustPublish(t, testOptions(), key)
	opts := testOptions()
	// Another zone and sub-second precision for the same second must not change a byte.
	opts.Expires = opts.Expires.In(time.FixedZone("CEST", 2*3600)).Add(400 * time.Millisecond)
	doc2, sig2 := mustPublish(t, opts, key)
	if !bytes.Equal(doc1, doc2) || !bytes.Equal(sig1, sig2) {
		t.Errorf("same release published twice differs:\n%s%s\n%s%s", doc1, sig1, doc2, sig2)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeImage(t *testing.T, image []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fw.bin")
	if err := os.WriteFile(path, image, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPublishDirWritesVerifiableRelease(t *testing.T) {
	key := testKey("vendor")
	out := t.TempDir()
	rel, err := PublishDir(out, writeImage(t, testImage), testOptions(), key)
	if err != nil {
		t.Fatalf("PublishDir: %v", err)
	}
	classDir := filepath.Join(out, "esp-relay")
	if rel.DocPath != filepath.Join(classDir, DocName) || rel.SigPath != filepath.Join(classDir, SigName) ||
		rel.ImagePath != filepath.Join(classDir, rel.Manifest.ImageName()) {
		t.Errorf("paths = %+v", rel)
	}
	m, err := testVerifier(key).Verify(readFile(t, rel.DocPath), readFile(t, rel.SigPath), "esp-relay")
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if *m != *rel.Manifest {
		t.Errorf("Release.Manifest = %+v, verified %+v", rel.Manifest, m)
	}
	if err := m.VerifyImage(bytes.NewReader(readFile(t, rel.ImagePath))); err != nil {
		t.Errorf("copied image: %v", err)
	}
	entries, err := os.ReadDir(classDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("class directory holds %d entries, want 3 (no temporary files left)", len(entries))
	}
}

func TestPublishDirImagePlacement(t *testing.T) {
	tests := []struct {
		name, url, wantImage string
	}{
		{"default is content-addressed", "", "<sha>.bin"},
		{"plain relative file name is copied", "fw-1.4.2.bin", "fw-1.4.2.bin"},
		{"absolute URL is not copied", "https://cdn.example.net/fw.bin", ""},
		{"path into another directory is not copied", "../images/fw.bin", ""},
		{"URL with a query is not copied", "fw.bin?v=2", ""},
		{"the manifest's own name is not overwritten", "manifest.json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.URL = tt.url
			out := t.TempDir()
			rel, err := PublishDir(out, writeImage(t, testImage), opts, testKey("vendor"))
			if err != nil {
				t.Fatalf("PublishDir: %v", err)
			}
			want := strings.Replace(tt.wantImage, "<sha>.bin", rel.Manifest.ImageName(), 1)
			if want == "" {
				if rel.ImagePath != "" {
					t.Errorf("image copied to %s, want no copy", rel.ImagePath)
				}
				return
			}
			if rel.ImagePath != filepath.Join(out, "esp-relay", want) {
				t.Errorf("ImagePath = %s, want %s", rel.ImagePath, want)
			}
			if !bytes.Equal(readFile(t, rel.ImagePath), testImage) {
				t.Error("copied image differs")
			}
		})
	}
}

func TestPublishDirRefusesToReplaceWithRollback(t *testing.T) {
	key := testKey("vendor")
	other := append(bytes.Clone(testImage), "v2"...)
	tests := []struct {
		name  string
		seq   uint32
		image []byte
		want  error
	}{
		{"lower seq", 41, testImage, ErrRollback},
		{"same seq, different image", 42, other, ErrRollback},
		{"same seq, same image (re-signed to extend expiry)", 42, testImage, nil},
		{"higher seq", 43, other, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			if _, err := PublishDir(out, writeImage(t, testImage), testOptions(), key); err != nil {
				t.Fatal(err)
			}
			before := readFile(t, filepath.Join(out, "esp-relay", DocName))
			opts := testOptions()
			opts.Seq = tt.seq
			opts.MinSeq = 0
			_, err := PublishDir(out, writeImage(t, tt.image), opts, key)
			if !errors.Is(err, tt.want) {
				t.Fatalf("second PublishDir error = %v, want %v", err, tt.want)
			}
			if err != nil && !bytes.Equal(before, readFile(t, filepath.Join(out, "esp-relay", DocName))) {
				t.Error("refused publish changed manifest.json")
			}
		})
	}
}

func TestPublishDirRefusesDotClasses(t *testing.T) {
	for _, class := range []string{".", ".."} {
		parent := t.TempDir()
		out := filepath.Join(parent, "site")
		opts := testOptions()
		opts.Class = class
		if _, err := PublishDir(out, writeImage(t, testImage), opts, testKey("vendor")); !errors.Is(err, ErrMalformed) {
			t.Errorf("class %q: error = %v, want ErrMalformed", class, err)
		}
		for _, dir := range []string{out, parent} {
			if _, err := os.Stat(filepath.Join(dir, DocName)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("class %q: %s written (stat error %v)", class, filepath.Join(dir, DocName), err)
			}
		}
	}
}

func TestPublishDirRefusesMissingImage(t *testing.T) {
	_, err := PublishDir(t.TempDir(), filepath.Join(t.TempDir(), "missing.bin"), testOptions(), testKey("vendor"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %v, want fs.ErrNotExist", err)
	}
}
