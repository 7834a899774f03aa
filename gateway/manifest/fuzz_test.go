package manifest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/fotagate/fotagate/protocol"
)

// FuzzParse attacks the document parser. The committed seeds are in testdata/fuzz/FuzzParse.
// Any document parse accepts must satisfy every field rule, and re-encoding it must give a
// document that parses to the same manifest: the parser keeps nothing it cannot explain.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := parse(doc)
		if err != nil {
			if m != nil {
				t.Fatal("manifest returned along with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInsecureURL) {
				t.Fatalf("error %v wraps none of the parser's sentinels", err)
			}
			return
		}
		if protocol.CheckClass(m.Class) != nil || checkVersion(m.Version) != nil || checkURL(m.URL) != nil ||
			m.Size == 0 || m.MinSeq > m.Seq {
			t.Fatalf("accepted an invalid manifest %+v", m)
		}
		doc2, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parse(doc2)
		if err != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", err, doc2)
		}
		if !m2.Expires.Equal(m.Expires) {
			t.Fatalf("expires %v became %v", m.Expires, m2.Expires)
		}
		m2.Expires = m.Expires
		if *m2 != *m {
			t.Fatalf("re-encoding changed the manifest:\n%+v\n%+v", m, m2)
		}
	})
}

// FuzzParseEnvelope attacks the signature envelope parser, which runs before any signature
// check and so sees bytes from anyone. Seeds are in testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			if e != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("envelope %v with error %v", e, err)
			}
			return
		}
		again := fmt.Appendf(nil, `{"key_id":"%s","alg":"ed25519","sig":"%s"}`, e.KeyID, base64.StdEncoding.EncodeToString(e.Sig[:]))
		e2, err := parseEnvelope(again)
		if err != nil || *e2 != *e {
			t.Fatalf("re-encoded envelope %s: %v", again, err)
		}
	})
}
