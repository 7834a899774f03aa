package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// copyBufSize is the read size of downloads; it only trades syscalls for memory.
const copyBufSize = 32 << 10

// Download writes bytes [offset, size) of the resource at rawURL to w. offset is how much
// of it the caller already holds (its durable partial file); size is the length the caller
// expects, so it is also the limit: Download never writes more than size-offset bytes.
//
// From a non-zero position it asks for "Range: bytes=pos-". A cut or stalled transfer is
// retried from where w got to. If the server ignores Range and answers 200, the body is
// read from byte 0 and the bytes w already has are dropped, so nothing is written twice;
// once an attempt of this call has seen a strong ETag, later ones send If-Range and a new
// ETag ends the call with ErrChanged. A resource that is, or says it is, longer than size
// fails with ErrTooLarge and shorter with ErrSizeMismatch; a body that keeps ending early
// fails with ErrTruncated once retries run out. w's own errors are returned wrapped, never
// retried.
//
// The protocol of the last response is returned even on error (empty if none came, or if
// offset == size, when there is nothing to fetch).
func (c *Client) Download(ctx context.Context, rawURL string, w io.Writer, offset, size int64) (string, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	if w == nil || size <= 0 || offset < 0 || offset > size {
		return "", fmt.Errorf("%w: Download wants a writer and 0 <= offset <= size, size > 0; got offset %d, size %d", ErrArgument, offset, size)
	}
	if offset == size {
		return "", nil
	}
	d := &download{u: u, w: w, pos: offset, size: size, log: c.log}
	proto, err := c.call(ctx, "download", u, d.attempt)
	if err == nil {
		c.log.Debug("upstream download complete", zap.String("url", u.Redacted()), zap.String("proto", proto),
			zap.Int64("from", offset), zap.Int64("size", size))
	}
	return proto, err
}

// download is the state one Download call carries across its attempts.
type download struct {
	u    *url.URL
	w    io.Writer
	pos  int64 // bytes of the resource the writer holds
	size int64
	etag string // strong validator seen by an earlier attempt of this call
	end  int64  // last byte the current 206 declared; -1 for a 200
	log  *zap.Logger
}

// errRangeDone: a 206 ended cleanly where its Content-Range said, before the resource does.
// Servers may answer an open-ended range with less; that is progress, not a failure.
var errRangeDone = errors.New("partial response complete")

func (d *download) attempt(ctx context.Context, hc *http.Client, wt *watch) (string, error) {
	for {
		proto, err := d.request(ctx, hc, wt)
		if err != errRangeDone {
			return proto, err
		}
	}
}

// request makes one request from the current position.
func (d *download) request(ctx context.Context, hc *http.Client, wt *watch) (string, error) {
	req, err := request(ctx, d.u)
	if err != nil {
		return "", err
	}
	if d.pos > 0 {
		// Open-ended, so that a resource longer than expected still shows (ErrTooLarge)
		// instead of being silently clipped to what we asked for.
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.pos, 10)+"-")
		if d.etag != "" {
			req.Header.Set("If-Range", d.etag)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", classify(ctx, d.u, err)
	}
	defer resp.Body.Close()
	wt.progress()
	proto := protoOf(resp)

	skip, err := d.check(resp)
	if err != nil {
		return proto, err
	}
	return proto, d.copy(wt.body(resp.Body), skip)
}

// check validates the response head against the request and returns how many leading body
// bytes the writer already has.
func (d *download) check(resp *http.Response) (skip int64, err error) {
	if err := checkEncoding(resp); err != nil {
		return 0, err
	}
	tag := strongETag(resp.Header.Get("ETag"))
	if d.etag != "" && tag != "" && tag != d.etag {
		return 0, fmt.Errorf("%w: ETag was %s, now %s; restart from byte 0", ErrChanged, d.etag, tag)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if d.pos == 0 {
			return 0, fmt.Errorf("%w: 206 to a request without Range", ErrBadResponse)
		}
		start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return 0, err
		}
		d.end = end
		if start != d.pos {
			return 0, fmt.Errorf("%w: asked for bytes from %d, got Content-Range from %d", ErrBadResponse, d.pos, start)
		}
		if err := d.checkTotal(total, "Content-Range total"); err != nil {
			return 0, err
		}
	case http.StatusOK:
		d.end = -1
		if err := d.checkTotal(resp.ContentLength, "Content-Length"); err != nil {
			return 0, err
		}
		if d.pos > 0 {
			if d.etag != "" && tag == "" {
				// If-Range failed, or the server ignores ranges and validators alike: we
				// cannot tell the same resource from a new one.
				return 0, fmt.Errorf("%w: 200 without ETag to If-Range %s; restart from byte 0", ErrChanged, d.etag)
			}
			d.log.Info("upstream ignored Range; reading from byte 0 and dropping what we have",
				zap.String("url", d.u.Redacted()), zap.Int64("dropping", d.pos))
			skip = d.pos
		}
	case http.StatusRequestedRangeNotSatisfiable:
		return 0, fmt.Errorf("%w: 416 for bytes from %d of an expected %d (Content-Range %q)",
			ErrSizeMismatch, d.pos, d.size, resp.Header.Get("Content-Range"))
	default:
		return 0, &StatusError{Code: resp.StatusCode, URL: resp.Request.URL.Redacted()}
	}
	if d.etag == "" {
		d.etag = tag
	}
	return skip, nil
}

// checkTotal compares a declared resource length (-1: not declared) with the expected one.
func (d *download) checkTotal(total int64, what string) error {
	switch {
	case total < 0:
		return nil
	case total > d.size:
		return fmt.Errorf("%w: %s %d, expected %d bytes", ErrTooLarge, what, total, d.size)
	case total < d.size:
		return fmt.Errorf("%w: %s %d, expected %d bytes", ErrSizeMismatch, what, total, d.size)
	}
	return nil
}

// copy moves the body to the writer: first dropping skip bytes, then at most size-pos
// bytes. A read that would pass size ends the attempt with ErrTooLarge, unwritten.
func (d *download) copy(body io.Reader, skip int64) error {
	buf := make([]byte, copyBufSize)
	for {
		n, rerr := body.Read(buf)
		data := buf[:n]
		if skip > 0 {
			k := min(skip, int64(len(data)))
			data, skip = data[k:], skip-k
		}
		if int64(len(data)) > d.size-d.pos {
			return fmt.Errorf("%w: body goes past the expected %d bytes", ErrTooLarge, d.size)
		}
		if len(data) > 0 {
			wn, werr := d.w.Write(data)
			d.pos += int64(wn)
			if werr == nil && wn < len(data) {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return fmt.Errorf("%w at byte %d: %w", errWrite, d.pos, werr)
			}
		}
		switch {
		case rerr == io.EOF && d.pos == d.size:
			return nil
		case rerr == io.EOF && d.end >= 0 && d.pos == d.end+1:
			return errRangeDone
		case rerr == io.EOF:
			return fmt.Errorf("%w: body ended at byte %d of %d", ErrTruncated, d.pos, d.size)
		case rerr != nil:
			return fmt.Errorf("%w at byte %d of %d: %w", ErrTruncated, d.pos, d.size, rerr)
		}
	}
}

// strongETag returns tag if it is a strong validator, the only kind If-Range may carry.
func strongETag(tag string) string {
	if strings.HasPrefix(tag, "W/") {
		return ""
	}
	return tag
}

// parseContentRange parses "bytes start-end/total"; total is -1 for "*".
func parseContentRange(v string) (start, end, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("%w: Content-Range %q", ErrBadResponse, v)
	}
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad()
	}
	rng, tot, ok := strings.Cut(spec, "/")
	if !ok {
		return bad()
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return bad()
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= end {
			return bad()
		}
	}
	return start, end, total, nil
}
