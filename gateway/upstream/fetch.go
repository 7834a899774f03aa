package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"
)

// Doc is the result of FetchDoc.
type Doc struct {
	// Body is the document; nil when NotModified.
	Body []byte
	// ETag is the validator to pass to the next poll: the response's, or the one sent if a
	// 304 named none. Empty if the server sends none.
	ETag string
	// NotModified reports a 304: the document still has the ETag the caller sent.
	NotModified bool
	// Proto is the protocol the answer came over: ProtoH3, ProtoH2 or ProtoHTTP11.
	Proto string
}

// FetchDoc GETs a small document such as a manifest, at most limit bytes (0: Config.DocLimit).
// With etag set it asks If-None-Match, and a 304 comes back as NotModified. A body or a
// declared length over the limit fails with ErrTooLarge, as soon as it is seen.
func (c *Client) FetchDoc(ctx context.Context, rawURL, etag string, limit int64) (Doc, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return Doc{}, err
	}
	if limit <= 0 {
		limit = c.cfg.DocLimit
	}
	var doc Doc
	proto, err := c.call(ctx, "fetch", u, func(ctx context.Context, hc *http.Client, w *watch) (string, error) {
		req, err := request(ctx, u)
		if err != nil {
			return "", err
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return "", classify(ctx, u, err)
		}
		defer resp.Body.Close()
		w.progress()
		proto := protoOf(resp)
		d, err := readDoc(resp, etag, limit, w)
		if err == nil {
			d.Proto = proto
			doc = d
		}
		return proto, err
	})
	if err != nil {
		return Doc{Proto: proto}, err
	}
	c.log.Debug("upstream document fetched", zap.String("url", u.Redacted()), zap.String("proto", doc.Proto),
		zap.Bool("not_modified", doc.NotModified), zap.Int("bytes", len(doc.Body)))
	return doc, nil
}

func readDoc(resp *http.Response, etag string, limit int64, w *watch) (Doc, error) {
	switch resp.StatusCode {
	case http.StatusNotModified:
		if etag == "" {
			return Doc{}, fmt.Errorf("%w: 304 Not Modified to a request without If-None-Match", ErrBadResponse)
		}
		tag := resp.Header.Get("ETag")
		if tag == "" {
			tag = etag
		}
		return Doc{ETag: tag, NotModified: true}, nil
	case http.StatusOK:
	default:
		return Doc{}, &StatusError{Code: resp.StatusCode, URL: resp.Request.URL.Redacted()}
	}
	if err := checkEncoding(resp); err != nil {
		return Doc{}, err
	}
	if resp.ContentLength > limit {
		return Doc{}, fmt.Errorf("%w: Content-Length %d over the limit of %d bytes", ErrTooLarge, resp.ContentLength, limit)
	}
	// One byte over the limit is enough to know; never read more than that.
	body, err := io.ReadAll(io.LimitReader(w.body(resp.Body), limit+1))
	if int64(len(body)) > limit {
		return Doc{}, fmt.Errorf("%w: body over the limit of %d bytes", ErrTooLarge, limit)
	}
	if err != nil {
		return Doc{}, fmt.Errorf("%w after %d bytes: %w", ErrTruncated, len(body), err)
	}
	return Doc{Body: body, ETag: resp.Header.Get("ETag")}, nil
}
