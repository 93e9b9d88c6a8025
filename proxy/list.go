package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/proxy/listquery"
)

// hasListParams cheaply tells whether any list post-processing parameter is
// present, so the common request never parses its query twice.
func hasListParams(rawQuery string) bool {
	if rawQuery == "" {
		return false
	}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		for _, name := range listquery.ParamNames() {
			if k == name {
				return true
			}
		}
	}
	return false
}

// isCollection reports whether path names a collection that can be listed:
// /api/v1/<resource>, /api/v1/namespaces/<ns>/<resource>, and the same
// under /apis/<group>/<version>.
func isCollection(path string) bool {
	segs := strings.Split(strings.Trim(decodedPath(path), "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	default:
		return false
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	return len(segs) == 1 && segs[0] != "" && segs[0] != "watch"
}

// serveList fetches the whole list in chunks, filters, sorts and pages it.
// Its memory comes from the proxy's list budget and its time from
// Options.ListTimeBudget; it stops as soon as the client goes away.
func (p *Proxy) serveList(ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity) {
	values, err := url.ParseQuery(t.Query)
	if err != nil {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "malformed query string")
		return
	}
	q, err := listquery.ParseOptions{MaxPageSize: p.opts.MaxPageSize}.Parse(values)
	if err != nil {
		var pe *listquery.ParamError
		if errors.As(err, &pe) {
			WriteStatus(ctx, fasthttp.StatusBadRequest, pe.Error())
		} else {
			WriteStatus(ctx, fasthttp.StatusBadRequest, "invalid list parameters")
		}
		return
	}
	if !ctx.IsGet() || !isCollection(t.Path) || isStream(t) {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "selector, sort and page parameters apply only to GET on a collection (not a single object or a watch)")
		return
	}
	// ContentLength is -1 for a chunked body and -2 for none.
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		// A list is fetched in several requests, and the client's
		// connection is read in the background to notice it leaving: a
		// body has nowhere to go, and would be taken for the client
		// leaving.
		WriteStatus(ctx, fasthttp.StatusBadRequest, "a list query with selector, sort or page parameters takes no request body")
		return
	}
	release, ok := p.takeList(id.StreamKey)
	if !ok {
		WriteTooManyRequests(ctx, time.Second)
		return
	}
	defer release()

	lctx, stop := p.listContext(ctx)
	defer stop()
	lease := &listLease{b: p.budget}
	// Whatever the list still holds when the handler returns goes back,
	// except a body handed to fasthttp, which gives its bytes back once
	// written (leasedBody).
	handed := false
	defer func() {
		if !handed {
			lease.release()
		}
	}()

	listquery.StripParams(values)
	values.Del("continue")
	values.Set("limit", strconv.Itoa(p.opts.ListChunkSize))
	coll := listquery.NewCollector(q, p.opts.ListLimits).WithContext(lctx).WithBudget(lease)
	// One buffer serves every chunk: Add copies what it keeps, so the next
	// chunk may overwrite the last. Reading each chunk into a fresh slice
	// made about twice the list's size in garbage per request.
	var buf []byte
	next := ""
	for {
		if next != "" {
			values.Set("continue", next)
		}
		chunk := Target{Cluster: t.Cluster, Path: t.Path, Query: values.Encode()}
		body, done := p.fetchChunk(lctx, ctx, u, chunk, id, &buf, lease)
		if done {
			return // an error, or the upstream's own non-200 answer, is already written
		}
		next, err = coll.Add(body)
		if err != nil {
			p.listError(ctx, lctx, u, err)
			return
		}
		if next == "" {
			break
		}
	}
	lease.Give(int64(cap(buf)))
	buf = nil
	out, err := coll.Result()
	if err != nil {
		p.listError(ctx, lctx, u, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyStream(&leasedBody{Reader: bytes.NewReader(out), lease: lease}, len(out))
	handed = true
}

// fetchChunk gets one chunk of the list as JSON, read into *buf, whose
// growth is taken from lease first; body is the chunk in *buf. A non-200
// answer (the cluster's own 403 or 410 Gone) goes back to the client
// unchanged and done is true. When lctx ends, the read stops.
func (p *Proxy) fetchChunk(lctx context.Context, ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity, buf *[]byte, lease *listLease) (body []byte, done bool) {
	if err := stopCause(lctx); err != nil {
		p.listError(ctx, lctx, u, err)
		return nil, true
	}
	req := p.newRequest(ctx, u, t, id, false)
	// Post-processing reads JSON; keep a Table request a Table.
	accept := "application/json"
	if strings.Contains(string(ctx.Request.Header.Peek("Accept")), "as=Table") {
		accept = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
	}
	req.Header.Set("Accept", accept)
	req.Header.Del("Accept-Encoding")
	timeout := p.opts.RequestTimeout
	if d, ok := lctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(d), time.Millisecond))
	}
	req.SetTimeout(timeout)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	start := time.Now()
	err := u.client.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		if stopCause(lctx) != nil {
			p.listError(ctx, lctx, u, err)
			return nil, true
		}
		p.upstreamError(ctx, u, err)
		return nil, true
	}
	p.opts.Observer.Request(u.name, "GET", resp.StatusCode(), time.Since(start))
	limit := p.opts.ListLimits.MaxBytes + 1
	data, err := readChunk(lctx, resp, limit, buf, lease)
	if err != nil {
		if stopCause(lctx) != nil || errors.Is(err, errListBusy) || errors.Is(err, errListOverBudget) {
			p.listError(ctx, lctx, u, err)
			return nil, true
		}
		p.upstreamError(ctx, u, err)
		return nil, true
	}
	if int64(len(data)) >= limit {
		WriteStatus(ctx, fasthttp.StatusRequestEntityTooLarge, "the list is too large to filter, sort and page; narrow it with a namespace or a labelSelector")
		return nil, true
	}
	if foreignRedirect(ctx, &resp.Header) {
		p.refuseRedirect(ctx, u, resp.StatusCode())
		return nil, true
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		ctx.SetStatusCode(resp.StatusCode())
		copyResponseHeaders(&ctx.Response.Header, &resp.Header)
		ctx.SetBody(data)
		return nil, true
	}
	return data, false
}

// readChunk reads resp's body, at most limit bytes, into *buf (emptied
// first). Before the buffer grows, the new capacity is taken from lease,
// and the old one given back once copied: the budget counts the buffer
// as it really is, and a list that would overrun the budget stops reading
// rather than allocating. When lctx ends, the body stream is closed, which
// ends a read blocked on a slow cluster.
func readChunk(lctx context.Context, resp *fasthttp.Response, limit int64, buf *[]byte, lease listquery.Budget) ([]byte, error) {
	b := (*buf)[:0]
	defer func() { *buf = b }()
	var s io.Reader = resp.BodyStream()
	if s == nil {
		s = bytes.NewReader(resp.Body())
	}
	if c, ok := s.(fasthttp.ReadCloserWithError); ok {
		stopRead := context.AfterFunc(lctx, func() { _ = c.CloseWithError(errListAbortedRead) })
		defer stopRead()
	}
	// The caller's deferred ReleaseResponse closes the stream; a body cut
	// at the limit is discarded with its connection then.
	want := int64(64 << 10)
	if n := resp.Header.ContentLength(); n > 0 {
		want = min(int64(n)+bytes.MinRead, limit)
	}
	for {
		if len(b) == cap(b) {
			grown := max(want, 2*int64(cap(b)))
			grown = min(grown, limit)
			// Both buffers exist while the bytes are copied.
			if err := lease.Take(grown); err != nil {
				return nil, err
			}
			nb := make([]byte, len(b), grown)
			copy(nb, b)
			lease.Give(int64(cap(b)))
			b = nb
		}
		n, err := s.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		switch {
		case int64(len(b)) >= limit:
			return b, nil
		case err == io.EOF:
			return b, nil
		case err != nil:
			if cause := stopCause(lctx); cause != nil {
				return nil, cause
			}
			return nil, err
		}
	}
}

// readAllLimit reads resp's body, at most limit bytes, into buf.
func readAllLimit(resp *fasthttp.Response, limit int64, buf *bytes.Buffer) ([]byte, error) {
	buf.Reset()
	s := resp.BodyStream()
	if s == nil {
		buf.Write(resp.Body())
		return buf.Bytes(), nil
	}
	if n := resp.Header.ContentLength(); n > 0 && int64(n) < limit {
		buf.Grow(n + bytes.MinRead) // ReadFrom wants MinRead spare to see EOF without growing
	}
	// The caller's deferred ReleaseResponse closes the stream; a body cut
	// at the limit is discarded with its connection then.
	_, err := buf.ReadFrom(io.LimitReader(s, limit))
	return buf.Bytes(), err
}

// stopCause says why lctx ended, or nil. A deadline already past counts
// as the time budget even before the context's timer has fired: the
// upstream request's own timeout, set to the same deadline, may fail it
// first.
func stopCause(lctx context.Context) error {
	if cause := context.Cause(lctx); cause != nil {
		return cause
	}
	if d, ok := lctx.Deadline(); ok && !time.Now().Before(d) {
		return errListTimeBudget
	}
	return nil
}

// listError answers a list whose processing failed or stopped.
func (p *Proxy) listError(ctx *fasthttp.RequestCtx, lctx context.Context, u *upstream, err error) {
	if cause := stopCause(lctx); cause != nil && !errors.Is(err, errListBusy) && !errors.Is(err, errListOverBudget) {
		err = cause
	}
	switch {
	case errors.Is(err, errListClientGone):
		// Nobody reads the answer; the status is for the access log
		// and the audit (499, "client closed request", as nginx logs it).
		p.budget.clientGone.Add(1)
		ctx.SetConnectionClose()
		WriteStatus(ctx, 499, "the client closed the connection before the list was ready")
	case errors.Is(err, errListTimeBudget):
		p.budget.timedOut.Add(1)
		WriteStatus(ctx, fasthttp.StatusGatewayTimeout, fmt.Sprintf("the list was not fetched, filtered and sorted within the %s budget; narrow it with a namespace, a labelSelector or fewer selector values", p.opts.ListTimeBudget))
	case errors.Is(err, errListBusy):
		p.budget.refused.Add(1)
		WriteStatus(ctx, fasthttp.StatusTooManyRequests, "the memory for list queries is in use by other lists; retry after 1 seconds")
		ctx.Response.Header.Set("Retry-After", "1")
	case errors.Is(err, errListOverBudget):
		p.budget.overBudget.Add(1)
		WriteStatus(ctx, fasthttp.StatusRequestEntityTooLarge, "the list needs more memory than list queries may use; narrow it with a namespace or a labelSelector, or ask for an earlier page")
	case errors.Is(err, listquery.ErrTooLarge):
		WriteStatus(ctx, fasthttp.StatusRequestEntityTooLarge, "the list is too large to filter, sort and page; narrow it with a namespace or a labelSelector")
	case errors.Is(err, listquery.ErrNotList):
		WriteStatus(ctx, fasthttp.StatusBadRequest, "the response is not a list; selector, sort and page parameters apply only to lists")
	default:
		p.log.Warn("list post-processing failed", "cluster", u.name, "err", err.Error())
		WriteStatus(ctx, fasthttp.StatusBadGateway, fmt.Sprintf("cluster %q returned a list that could not be processed", u.name))
	}
}
