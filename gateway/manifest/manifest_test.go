package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
)

// baseDoc is a valid document in Publish's layout, for the parser tests to edit.
func baseDoc(t *testing.T) []byte {
	t.Helper()
	doc, _ := mustPublish(t, testOptions(), testKey("vendor"))
	return doc
}

func TestParseRejectsMalformedDocuments(t *testing.T) {
	doc := baseDoc(t)
	size := fmt.Sprintf(`"size": %d`, len(testImage))
	m, err := parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	sha := fmt.Sprintf("%x", m.SHA256)
	tests := []struct {
		name string
		doc  []byte
		want error
	}{
		{"empty document", nil, ErrMalformed},
		{"top level is an array", []byte(`[]`), ErrMalformed},
		{"top level is a string", []byte(`"manifest"`), ErrMalformed},
		{"truncated after the first field", doc[:bytes.IndexByte(doc, ',')+1], ErrMalformed},
		{"trailing data after the object", append(bytes.Clone(doc), "{}"...), ErrMalformed},
		{"two objects", append(bytes.Clone(doc), doc...), ErrMalformed},
		{"byte order mark", append([]byte("\xef\xbb\xbf"), doc...), ErrMalformed},
		{"invalid UTF-8 in a string", edit(t, doc, `"1.4.2"`, "\"1.4.\xff\""), ErrMalformed},
		{"over the size limit", append(bytes.Clone(doc), bytes.Repeat([]byte(" "), MaxDocSize)...), ErrTooLarge},
		{"unknown field", edit(t, doc, `"seq"`, `"notes": "x", "seq"`), ErrMalformed},
		{"duplicate field", edit(t, doc, `"seq": 42`, `"seq": 42, "seq": 43`), ErrMalformed},
		{"duplicate field spelt with an escape", edit(t, doc, `"seq": 42`, `"seq": 42, "s\u0065q": 43`), ErrMalformed},
		{"field name in another case", edit(t, doc, `"seq"`, `"Seq"`), ErrMalformed},
		{"missing required field", edit(t, doc, `"seq": 42,`, ``), ErrMalformed},
		{"null value", edit(t, doc, `"seq": 42`, `"seq": null`), ErrMalformed},
		{"nested object", edit(t, doc, `"seq": 42`, `"seq": {"n": 42}`), ErrMalformed},
		{"array value", edit(t, doc, `"seq": 42`, `"seq": [42]`), ErrMalformed},
		{"format 2", edit(t, doc, `"format": 1`, `"format": 2`), ErrMalformed},
		{"format as a string", edit(t, doc, `"format": 1`, `"format": "1"`), ErrMalformed},
		{"class with a slash", edit(t, doc, `"esp-relay"`, `"esp/relay"`), ErrMalformed},
		{"class too long", edit(t, doc, `"esp-relay"`, `"esp-relay-0123456789"`), ErrMalformed},
		{"empty version", edit(t, doc, `"1.4.2"`, `""`), ErrMalformed},
		{"version with a newline", edit(t, doc, `"1.4.2"`, `"1.4.2\nFAKE LOG LINE"`), ErrMalformed},
		{"version too long", edit(t, doc, `"1.4.2"`, `"`+strings.Repeat("9", MaxVersionLen+1)+`"`), ErrMalformed},
		{"negative seq", edit(t, doc, `"seq": 42`, `"seq": -42`), ErrMalformed},
		{"fractional seq", edit(t, doc, `"seq": 42`, `"seq": 42.0`), ErrMalformed},
		{"seq with an exponent", edit(t, doc, `"seq": 42`, `"seq": 4.2e1`), ErrMalformed},
		{"seq as a string", edit(t, doc, `"seq": 42`, `"seq": "42"`), ErrMalformed},
		{"seq over uint32", edit(t, doc, `"seq": 42`, `"seq": 4294967296`), ErrMalformed},
		{"min_seq above seq", edit(t, doc, `"min_seq": 40`, `"min_seq": 43`), ErrMalformed},
		{"zero size", edit(t, doc, size, `"size": 0`), ErrMalformed},
		{"size over uint32", edit(t, doc, size, `"size": 4294967296`), ErrMalformed},
		{"sha256 in upper case", edit(t, doc, `"sha256": "`+sha, `"sha256": "`+strings.ToUpper(sha)), ErrMalformed},
		{"sha256 too short", edit(t, doc, `"sha256": "`+sha, `"sha256": "`+sha[2:]), ErrMalformed},
		{"sha256 not hex", edit(t, doc, `"sha256": "`+sha, `"sha256": "zz`+sha[2:]), ErrMalformed},
		{"empty url", edit(t, doc, `"url": "`+sha+`.bin"`, `"url": ""`), ErrMalformed},
		{"http url", edit(t, doc, `"url": "`, `"url": "http://fw.example.com/`), ErrInsecureURL},
		{"ftp url", edit(t, doc, `"url": "`, `"url": "ftp://fw.example.com/`), ErrInsecureURL},
		{"file url", edit(t, doc, `"url": "`, `"url": "file:///`), ErrInsecureURL},
		{"url with credentials", edit(t, doc, `"url": "`, `"url": "https://user:pw@fw.example.com/`), ErrMalformed},
		{"https url without host", edit(t, doc, `"url": "`, `"url": "https:///`), ErrMalformed},
		{"url with a space", edit(t, doc, `.bin"`, ` .bin"`), ErrMalformed},
		{"expires without a zone", edit(t, doc, `"2026-03-31T12:00:00Z"`, `"2026-03-31T12:00:00"`), ErrMalformed},
		{"expires as a date only", edit(t, doc, `"2026-03-31T12:00:00Z"`, `"2026-03-31"`), ErrMalformed},
		{"expires as a Unix time", edit(t, doc, `"2026-03-31T12:00:00Z"`, `1774958400`), ErrMalformed},
		{"image_sig too short", edit(t, doc, `"image_sig": "`, `"image_sig": "AAAA`), ErrMalformed},
		{"image_sig unpadded", edit(t, doc, `=="`, `"`), ErrMalformed},
		{"image_sig in hex", edit(t, doc, `"image_sig": "`, `"image_sig": "00`), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parse(tt.doc)
			if !errors.Is(err, tt.want) {
				t.Fatalf("parse error = %v, want %v", err, tt.want)
			}
			if m != nil {
				t.Error("parse returned a manifest along with an error")
			}
		})
	}
}

func TestParseAcceptsValidVariants(t *testing.T) {
	doc := baseDoc(t)
	want, err := parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	noMin := *want
	noMin.MinSeq = 0
	absURL := *want
	absURL.URL = "https://fw.example.com/esp-relay/" + want.ImageName()
	upperScheme := absURL
	upperScheme.URL = "HTTPS://fw.example.com/esp-relay/" + want.ImageName() // kept as written
	tests := []struct {
		name string
		doc  []byte
		want *Manifest
	}{
		{"as published", doc, want},
		{"without white space", []byte(strings.Join(strings.Fields(string(doc)), "")), want},
		{"fields in another order", edit(t, edit(t, doc, `"format": 1,`, ``), `"class"`, `"format": 1, "class"`), want},
		{"field name escaped", edit(t, doc, `"seq"`, `"s\u0065q"`), want},
		{"min_seq omitted", edit(t, doc, `"min_seq": 40,`, ``), &noMin},
		{"absolute https url", edit(t, doc, `"url": "`, `"url": "https://fw.example.com/esp-relay/`), &absURL},
		{"upper-case HTTPS scheme", edit(t, doc, `"url": "`, `"url": "HTTPS://fw.example.com/esp-relay/`), &upperScheme},
		// The same instant as 2026-03-31T12:00:00Z, written with an offset.
		{"expires with an offset", edit(t, doc, `"2026-03-31T12:00:00Z"`, `"2026-03-31T14:00:00+02:00"`), want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(tt.doc)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !got.Expires.Equal(tt.want.Expires) {
				t.Errorf("Expires = %v, want %v", got.Expires, tt.want.Expires)
			}
			g, w := *got, *tt.want
			g.Expires = w.Expires // compared with Equal above: zones may differ
			if g != w {
				t.Errorf("parse =\n%+v\nwant\n%+v", g, w)
			}
		})
	}
}

func TestCheckInstallRefusesRollbackAndBelowMinSeq(t *testing.T) {
	m := &Manifest{Class: "esp-relay", Seq: 42, MinSeq: 40}
	tests := []struct {
		name    string
		running uint32
		want    error
	}{
		{"older device at min_seq", 40, nil},
		{"older device above min_seq", 41, nil},
		{"device already on this seq", 42, nil},
		{"device on a newer seq is a rollback", 43, ErrRollback},
		{"device far ahead is a rollback", 1 << 31, ErrRollback},
		{"device below min_seq", 39, ErrBelowMinSeq},
		{"factory device below min_seq", 0, ErrBelowMinSeq},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.CheckInstall(tt.running); !errors.Is(err, tt.want) {
				t.Errorf("CheckInstall(%d) = %v, want %v", tt.running, err, tt.want)
			}
		})
	}
}

func TestCheckRollbackIgnoresMinSeq(t *testing.T) {
	m := &Manifest{Class: "esp-relay", Seq: 42, MinSeq: 40}
	if err := m.CheckRollback(0); err != nil {
		t.Errorf("CheckRollback(0) = %v; min_seq is CheckInstall's business", err)
	}
	if err := m.CheckRollback(43); !errors.Is(err, ErrRollback) {
		t.Errorf("CheckRollback(43) = %v, want ErrRollback", err)
	}
}

// countingReader yields endless bytes and counts how many were read.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n += int64(len(p))
	return len(p), nil
}

func TestVerifyImageRejectsWrongSizeOrDigest(t *testing.T) {
	doc := baseDoc(t)
	m, err := parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(testImage)
	flipped[len(flipped)/2] ^= 0x01
	tests := []struct {
		name  string
		image []byte
		want  error
	}{
		{"exact image", testImage, nil},
		{"one byte short", testImage[:len(testImage)-1], ErrSizeMismatch},
		{"one byte extra", append(bytes.Clone(testImage), 0), ErrSizeMismatch},
		{"empty", nil, ErrSizeMismatch},
		{"one bit flipped", flipped, ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.VerifyImage(bytes.NewReader(tt.image)); !errors.Is(err, tt.want) {
				t.Errorf("VerifyImage = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyImageReadsAtMostSizePlusOne(t *testing.T) {
	m := &Manifest{Class: "esp-relay", Size: 1000}
	r := &countingReader{}
	if err := m.VerifyImage(io.LimitReader(r, 1<<30)); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("endless image: error = %v, want ErrSizeMismatch", err)
	}
	// io.Copy reads in 32 KiB buffers; LimitReader trims each read to what is left, so the
	// counting reader below it sees exactly Size+1 bytes requested.
	if r.n != 1001 {
		t.Errorf("read %d bytes from an endless image, want %d", r.n, 1001)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestVerifyImageReportsReadErrors(t *testing.T) {
	m := &Manifest{Class: "esp-relay", Size: 10}
	err := m.VerifyImage(failingReader{})
	if err == nil || errors.Is(err, ErrSizeMismatch) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("VerifyImage = %v, want the read error", err)
	}
}

func TestResolveURLAllowsOnlyHTTPS(t *testing.T) {
	base, _ := url.Parse("https://fw.example.com/vendor/esp-relay/manifest.json")
	httpBase, _ := url.Parse("http://fw.example.com/vendor/esp-relay/manifest.json")
	tests := []struct {
		name string
		ref  string
		base *url.URL
		want string
		err  error
	}{
		{"file name beside the manifest", "abc.bin", base, "https://fw.example.com/vendor/esp-relay/abc.bin", nil},
		{"relative path", "../images/abc.bin", base, "https://fw.example.com/vendor/images/abc.bin", nil},
		{"absolute path", "/abc.bin", base, "https://fw.example.com/abc.bin", nil},
		{"absolute https URL ignores the base", "https://cdn.example.net/abc.bin", base, "https://cdn.example.net/abc.bin", nil},
		{"absolute https URL needs no base", "https://cdn.example.net/abc.bin", nil, "https://cdn.example.net/abc.bin", nil},
		{"scheme-relative URL keeps https", "//cdn.example.net/abc.bin", base, "https://cdn.example.net/abc.bin", nil},
		{"relative URL against an http manifest URL", "abc.bin", httpBase, "", ErrInsecureURL},
		{"scheme-relative URL against an http manifest URL", "//cdn.example.net/abc.bin", httpBase, "", ErrInsecureURL},
		{"absolute http URL", "http://cdn.example.net/abc.bin", base, "", ErrInsecureURL},
		{"file URL", "file:///etc/passwd", base, "", ErrInsecureURL},
		{"relative URL without a base", "abc.bin", nil, "", ErrMalformed},
		{"https URL with credentials", "https://u:p@cdn.example.net/abc.bin", base, "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manifest{URL: tt.ref}
			got, err := m.ResolveURL(tt.base)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ResolveURL error = %v, want %v", err, tt.err)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("ResolveURL = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSignatureURLAppendsSuffix(t *testing.T) {
	for in, want := range map[string]string{
		"https://fw.example.com/esp-relay/manifest.json":         "https://fw.example.com/esp-relay/manifest.json.sig",
		"https://fw.example.com/esp-relay/manifest.json?token=1": "https://fw.example.com/esp-relay/manifest.json.sig?token=1",
		"https://fw.example.com/a%2Fb/manifest.json":             "https://fw.example.com/a%2Fb/manifest.json.sig",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := SignatureURL(u).String(); got != want {
			t.Errorf("SignatureURL(%s) = %s, want %s", in, got, want)
		}
		if u.String() != in {
			t.Errorf("SignatureURL changed its argument to %s", u)
		}
	}
}
