package proxy

import (
	"bytes"
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
	segs := strings.Split(strings.Trim(path, "/"), "/")
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
	select {
	case p.lists <- struct{}{}:
		defer func() { <-p.lists }()
	default:
		WriteTooManyRequests(ctx, time.Second)
		return
	}

	listquery.StripParams(values)
	values.Del("continue")
	values.Set("limit", strconv.Itoa(p.opts.ListChunkSize))
	coll := listquery.NewCollector(q, p.opts.ListLimits)
	// One buffer serves every chunk: Add copies what it keeps, so the next
	// chunk may overwrite the last. Reading each chunk into a fresh slice
	// made about twice the list's size in garbage per request.
	var buf bytes.Buffer
	next := ""
	for {
		if next != "" {
			values.Set("continue", next)
		}
		chunk := Target{Cluster: t.Cluster, Path: t.Path, Query: values.Encode()}
		body, done := p.fetchChunk(ctx, u, chunk, id, &buf)
		if done {
			return // an error, or the upstream's own non-200 answer, is already written
		}
		next, err = coll.Add(body)
		if err != nil {
			p.listError(ctx, u, err)
			return
		}
		if next == "" {
			break
		}
	}
	out, err := coll.Result()
	if err != nil {
		p.listError(ctx, u, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

// fetchChunk gets one chunk of the list as JSON, read into buf (reset
// first); body is buf's contents. A non-200 answer (the cluster's own 403
// or 410 Gone) goes back to the client unchanged and done is true.
func (p *Proxy) fetchChunk(ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity, buf *bytes.Buffer) (body []byte, done bool) {
	req := p.newRequest(ctx, u, t, id, false)
	// Post-processing reads JSON; keep a Table request a Table.
	accept := "application/json"
	if strings.Contains(string(ctx.Request.Header.Peek("Accept")), "as=Table") {
		accept = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
	}
	req.Header.Set("Accept", accept)
	req.Header.Del("Accept-Encoding")
	req.SetTimeout(p.opts.RequestTimeout)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	start := time.Now()
	err := u.client.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		p.upstreamError(ctx, u, err)
		return nil, true
	}
	p.opts.Observer.Request(u.name, "GET", resp.StatusCode(), time.Since(start))
	limit := p.opts.ListLimits.MaxBytes + 1
	data, err := readAllLimit(resp, limit, buf)
	if err != nil {
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

func (p *Proxy) listError(ctx *fasthttp.RequestCtx, u *upstream, err error) {
	switch {
	case errors.Is(err, listquery.ErrTooLarge):
		WriteStatus(ctx, fasthttp.StatusRequestEntityTooLarge, "the list is too large to filter, sort and page; narrow it with a namespace or a labelSelector")
	case errors.Is(err, listquery.ErrNotList):
		WriteStatus(ctx, fasthttp.StatusBadRequest, "the response is not a list; selector, sort and page parameters apply only to lists")
	default:
		p.log.Warn("list post-processing failed", "cluster", u.name, "err", err.Error())
		WriteStatus(ctx, fasthttp.StatusBadGateway, fmt.Sprintf("cluster %q returned a list that could not be processed", u.name))
	}
}
