package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/berthgw/berth/proxy/listquery"
)

// The fleet path, /proxy/fleet/<kubernetes path>, lists (or watches) one
// collection on many clusters at once and answers one List whose items
// each carry the annotation berth.dev/cluster. The gateway decides which
// clusters a caller's request covers and as whom (FleetMember); the
// proxy fetches each cluster's list concurrently, as that member, with a
// bounded fan-out, and merges them with listquery's unions, so the list
// query applies to the union and the list budgets cover all of it.

// FleetPrefix is where the gateway mounts the fleet path.
const FleetPrefix = "/proxy/fleet/"

// FleetAnnotation names the cluster an item of the fleet path came from.
const FleetAnnotation = "berth.dev/cluster"

// Parameters of the fleet path, read by the gateway and never sent to a
// cluster.
const (
	ParamClusters        = "clusters"
	ParamClusterSelector = "clusterSelector"
)

// Defaults of the fleet options.
const (
	DefaultFleetConcurrency   = 8
	DefaultFleetClusterTime   = 10 * time.Second
	DefaultMaxFleetWatches    = 64
	fleetFailureMessageLength = 300
	// maxFleetWarnings bounds the Warning headers of one fleet answer;
	// one more counts the rest, which the List's metadata names.
	maxFleetWarnings = 16
)

// FleetTarget is a parsed fleet request URI.
type FleetTarget struct {
	// Path is the raw Kubernetes path, under /api or /apis.
	Path string
	// Query is the raw query string without "?".
	Query string
}

// ErrNotFleetPath: the path under /proxy/fleet/ is outside /api and /apis.
var ErrNotFleetPath = errors.New("the fleet path serves only Kubernetes API paths (/api/…, /apis/…)")

// ParseFleetTarget parses a raw request URI under FleetPrefix with the
// same checks as ParseTarget, and refuses every root but /api and /apis.
// ErrNotProxy means the URI is not under FleetPrefix.
func ParseFleetTarget(rawURI []byte) (FleetTarget, error) {
	rest, ok := strings.CutPrefix(string(rawURI), FleetPrefix)
	if !ok {
		if string(rawURI) == strings.TrimSuffix(FleetPrefix, "/") || strings.HasPrefix(string(rawURI), "/proxy/fleet?") {
			return FleetTarget{}, ErrNotFleetPath
		}
		return FleetTarget{}, ErrNotProxy
	}
	pathPart, query, _ := strings.Cut(rest, "?")
	path := "/" + pathPart
	if err := checkPath(path); err != nil {
		return FleetTarget{}, err
	}
	if path != "/api" && path != "/apis" && !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/apis/") {
		return FleetTarget{}, ErrNotFleetPath
	}
	return FleetTarget{Path: path, Query: query}, nil
}

// FleetMember is one cluster a fleet request covers, and who the caller
// is there.
type FleetMember struct {
	Cluster  string
	Identity Identity
}

// FleetFailure is a cluster left out of a fleet answer, and why.
type FleetFailure struct {
	Cluster string `json:"cluster"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// isDiscovery reports whether path is an API discovery document: /api,
// /apis, /api/v1, /apis/<group>, /apis/<group>/<version>.
func isDiscovery(path string) bool {
	segs := strings.Split(strings.Trim(decodedPath(path), "/"), "/")
	switch segs[0] {
	case "api":
		return len(segs) <= 2
	case "apis":
		return len(segs) <= 3
	}
	return false
}

// ServeFleet answers a fleet request for members (sorted by cluster, each
// reachable by the caller). A list or a watch of a collection is run on
// every member; discovery (/api, /apis and their group versions) is read
// from the first member, so kubectl can be pointed at the fleet path; any
// other path is 400. Errors are answered as Kubernetes Status objects.
func (p *Proxy) ServeFleet(ctx *fasthttp.RequestCtx, t FleetTarget, members []FleetMember) {
	defer setTenantHeaders(&ctx.Response.Header)
	if !ctx.IsGet() {
		WriteStatus(ctx, fasthttp.StatusMethodNotAllowed, "the fleet path only reads: use GET, or /proxy/clusters/<name>/ to change a cluster")
		return
	}
	if isUpgrade(&ctx.Request.Header) {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "exec, attach and port-forward go to one cluster: /proxy/clusters/<name>/")
		return
	}
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "a fleet request takes no request body")
		return
	}
	if isDiscovery(t.Path) {
		if len(members) == 0 {
			WriteStatus(ctx, fasthttp.StatusNotFound, "you reach no cluster through the fleet path")
			return
		}
		m := members[0]
		u := p.opts.Pool.get(m.Cluster)
		if u == nil {
			WriteStatus(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("cluster %q has no connection", m.Cluster))
			return
		}
		p.forward(ctx, u, Target{Cluster: m.Cluster, Path: t.Path, Query: t.Query}, m.Identity, nil)
		return
	}
	ft := Target{Path: t.Path, Query: t.Query}
	if isWatchPath(t.Path) || !isCollection(t.Path) {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "the fleet path lists and watches collections (…/pods, …/namespaces/<ns>/deployments), not single objects or subresources")
		return
	}
	if isStream(ft) {
		p.serveWatch(ctx, ft, members, true)
		return
	}
	p.serveFleetList(ctx, ft, members)
}

// fleetRequest builds one GET of a fleet request to u from src, a copy of
// the client's headers of the goroutine's own: the fan-out's goroutines
// must not read the client's request, which fasthttp does not let several
// goroutines read at once.
func fleetRequest(src *fasthttp.RequestHeader, u *upstream, t Target, id Identity) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.Header.DisableNormalizing()
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethod(fasthttp.MethodGet)
	copyRequestHeaders(&req.Header, src, false)
	setIdentity(&req.Header, u.authorization, id)
	req.SetRequestURI(u.uri(t))
	return req
}

// clientHeader copies the client's request headers, in the handler's
// goroutine, for one goroutine of a fan-out.
func clientHeader(ctx *fasthttp.RequestCtx) *fasthttp.RequestHeader {
	h := new(fasthttp.RequestHeader)
	ctx.Request.Header.CopyTo(h)
	return h
}

// lockedLease is a listLease shared by the goroutines of one fleet list.
type lockedLease struct {
	mu sync.Mutex
	l  listLease
}

func (l *lockedLease) Take(n int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.l.Take(n)
}

func (l *lockedLease) Give(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l.Give(n)
}

func (l *lockedLease) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l.release()
}

// errClusterTime: one cluster of a fleet list took longer than
// Options.FleetClusterTime; it is left out.
var errClusterTime = errors.New("cluster time spent")

// fleetList is the shared state of one fleet list's fetches.
type fleetList struct {
	p       *Proxy
	lctx    context.Context
	stop    context.CancelCauseFunc // fails the whole list
	q       *listquery.Query
	lease   *lockedLease
	bytes   atomic.Int64
	items   atomic.Int64
	accept  string
	baseQry url.Values
}

// serveFleetList fetches the list from every member, at most
// Options.FleetConcurrency at once, each into its own tagged Collector,
// and answers their Merge. A cluster that fails (refuses, is unreachable,
// answers badly or takes longer than FleetClusterTime) is left out and
// named in a Warning header and in the List's metadata; if every cluster
// fails, the answer is 502. What bounds a list bounds the union: one slot
// of MaxConcurrentLists, the memory budget (one lease for all clusters),
// ListLimits over the bytes and items of all clusters together, the time
// budget, and the client leaving stops every fetch.
func (p *Proxy) serveFleetList(ctx *fasthttp.RequestCtx, t Target, members []FleetMember) {
	values, err := url.ParseQuery(t.Query)
	if err != nil {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "malformed query string")
		return
	}
	q, err := listquery.ParseOptions{MaxPageSize: p.opts.MaxPageSize}.Parse(values)
	if err != nil {
		writeParamError(ctx, err)
		return
	}
	if q == nil {
		q = listquery.Everything()
	}
	key := ""
	if len(members) > 0 {
		key = members[0].Identity.StreamKey // the caller's, on every member
	}
	release, slot := p.takeList(key)
	if !slot {
		WriteTooManyRequests(ctx, time.Second)
		return
	}
	defer release()
	lctx, stopWatch := p.listContext(ctx)
	defer stopWatch()
	lctx, fail := context.WithCancelCause(lctx)
	defer fail(nil)
	lease := &lockedLease{l: listLease{b: p.budget}}
	handed := false
	defer func() {
		if !handed {
			lease.release()
		}
	}()
	listquery.StripParams(values)
	values.Del("continue")
	values.Set("limit", strconv.Itoa(p.opts.ListChunkSize))
	accept := "application/json"
	if strings.Contains(string(ctx.Request.Header.Peek("Accept")), "as=Table") {
		accept = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
	}
	fl := &fleetList{p: p, lctx: lctx, stop: fail, q: q, lease: lease, accept: accept, baseQry: values}

	parts := make([]*listquery.Collector, len(members))
	failures := make([]*FleetFailure, len(members))
	sem := make(chan struct{}, p.opts.FleetConcurrency)
	var wg sync.WaitGroup
	for i, m := range members {
		hdr := clientHeader(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-lctx.Done():
				return
			}
			parts[i], failures[i] = fl.fetch(m, t.Path, hdr)
		}()
	}
	wg.Wait()
	if cause := stopCause(lctx); cause != nil {
		p.listError(ctx, lctx, &upstream{name: "fleet"}, cause)
		return
	}
	var ok []*listquery.Collector
	var failed []FleetFailure
	var answered []string
	for i := range members {
		switch {
		case failures[i] != nil:
			failed = append(failed, *failures[i])
		case parts[i] != nil:
			ok = append(ok, parts[i])
			answered = append(answered, members[i].Cluster)
		}
	}
	if len(members) > 0 && len(ok) == 0 {
		writeFleetFailure(ctx, failed)
		return
	}
	meta, _ := json.Marshal(map[string]any{"berth.dev/clusters": nonNil(answered), "berth.dev/failed-clusters": nonNilF(failed)})
	var out []byte
	if len(ok) == 0 {
		out = []byte(`{"kind":"List","apiVersion":"v1","metadata":` + string(meta) + `,"items":[],"total":0}`)
		if err := lease.Take(int64(len(out))); err != nil {
			p.listError(ctx, lctx, &upstream{name: "fleet"}, err)
			return
		}
	} else if out, err = listquery.Merge(ok, string(meta)); err != nil {
		p.listError(ctx, lctx, &upstream{name: "fleet"}, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	addFleetWarnings(ctx, failed)
	ctx.SetBodyStream(&leasedBody{Reader: bytes.NewReader(out), lease: lease}, len(out))
	handed = true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilF(s []FleetFailure) []FleetFailure {
	if s == nil {
		return []FleetFailure{}
	}
	return s
}

// fetch lists one member's collection into a tagged Collector. A failure
// of the cluster's own is returned as a FleetFailure; one that fails the
// whole list (a budget, the client leaving) stops fl and returns nothing.
func (fl *fleetList) fetch(m FleetMember, path string, hdr *fasthttp.RequestHeader) (*listquery.Collector, *FleetFailure) {
	p := fl.p
	u := p.opts.Pool.get(m.Cluster)
	if u == nil {
		return nil, &FleetFailure{Cluster: m.Cluster, Code: fasthttp.StatusServiceUnavailable, Message: fmt.Sprintf("cluster %q has no connection", m.Cluster)}
	}
	cctx, cancel := context.WithTimeoutCause(fl.lctx, p.opts.FleetClusterTime, errClusterTime)
	defer cancel()
	coll := listquery.NewCollector(fl.q, listquery.Limits{}).WithContext(cctx).WithBudget(fl.lease).WithTag(listquery.NewTag(FleetAnnotation, m.Cluster))
	values := url.Values{}
	for k, v := range fl.baseQry {
		values[k] = v
	}
	var buf []byte
	defer func() { fl.lease.Give(int64(cap(buf))) }()
	next := ""
	for {
		if next != "" {
			values.Set("continue", next)
		}
		body, failure, err := fl.chunk(cctx, u, Target{Cluster: m.Cluster, Path: path, Query: values.Encode()}, m.Identity, hdr, &buf)
		if err == nil && failure == nil {
			seen := coll.Seen()
			next, err = coll.Add(body)
			if err == nil {
				err = fl.count(int64(len(body)), int64(coll.Seen()-seen))
			}
		}
		if failure == nil && err != nil {
			failure = fl.failure(cctx, u, err)
		}
		if failure != nil {
			p.log.Info("fleet list left a cluster out", "cluster", m.Cluster, "code", failure.Code, "message", failure.Message)
			return nil, failure
		}
		if next == "" {
			// The merge runs under the list's context; this cluster's
			// ends when fetch returns.
			return coll.WithContext(fl.lctx), nil
		}
	}
}

// count adds one chunk's bytes and items to the union's, and fails the
// whole list past ListLimits.
func (fl *fleetList) count(bytes, items int64) error {
	lim := fl.p.opts.ListLimits
	if b := fl.bytes.Add(bytes); lim.MaxBytes > 0 && b > lim.MaxBytes {
		return fmt.Errorf("fleet list: %w: more than %d bytes", listquery.ErrTooLarge, lim.MaxBytes)
	}
	if n := fl.items.Add(items); lim.MaxItems > 0 && n > int64(lim.MaxItems) {
		return fmt.Errorf("fleet list: %w: more than %d items", listquery.ErrTooLarge, lim.MaxItems)
	}
	return nil
}

// failure decides what err means: the whole list stops (nil is returned,
// and fl is stopped with err) or only this cluster is left out.
func (fl *fleetList) failure(cctx context.Context, u *upstream, err error) *FleetFailure {
	if cause := stopCause(fl.lctx); cause != nil {
		return nil // the whole list is over; serveFleetList answers why
	}
	switch {
	case errors.Is(err, errListBusy), errors.Is(err, errListOverBudget), errors.Is(err, listquery.ErrTooLarge):
		fl.stop(err)
		return nil
	case context.Cause(cctx) == errClusterTime || errors.Is(err, errClusterTime) || errors.Is(err, errListTimeBudget):
		// (errListTimeBudget: the cluster's deadline passed before its
		// timer fired; the list's own has not, or stopCause would say.)
		return &FleetFailure{Cluster: u.name, Code: fasthttp.StatusGatewayTimeout, Message: fmt.Sprintf("cluster %q did not answer within %s", u.name, fl.p.opts.FleetClusterTime)}
	case errors.Is(err, listquery.ErrNotList), errors.Is(err, listquery.ErrMalformed):
		return &FleetFailure{Cluster: u.name, Code: fasthttp.StatusBadGateway, Message: fmt.Sprintf("cluster %q returned a list that could not be processed", u.name)}
	}
	code, msg, _ := upstreamFailure(u, err)
	return &FleetFailure{Cluster: u.name, Code: code, Message: msg}
}

// chunk gets one chunk of one cluster's list into *buf, taking its growth
// from the lease. A cluster's non-200 answer is its FleetFailure, with the
// message of its Status.
func (fl *fleetList) chunk(cctx context.Context, u *upstream, t Target, id Identity, hdr *fasthttp.RequestHeader, buf *[]byte) ([]byte, *FleetFailure, error) {
	p := fl.p
	if err := context.Cause(cctx); err != nil {
		return nil, nil, err
	}
	req := fleetRequest(hdr, u, t, id)
	req.Header.Set("Accept", fl.accept)
	req.Header.Del("Accept-Encoding")
	timeout := p.opts.RequestTimeout
	if d, ok := cctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(d), time.Millisecond))
	}
	req.SetTimeout(timeout)
	resp := fasthttp.AcquireResponse()
	start := time.Now()
	// fasthttp cannot interrupt a request waiting for the response's
	// headers; the list does not wait with it when cctx ends (the client
	// left, a budget or the cluster's time ran out): the request is left
	// to end by itself, within timeout, and to give back what it holds.
	done := make(chan error, 1)
	go func() { done <- u.client.Do(req, resp) }()
	var err error
	select {
	case err = <-done:
	case <-cctx.Done():
		go func() {
			<-done
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}()
		return nil, nil, context.Cause(cctx)
	}
	defer fasthttp.ReleaseResponse(resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		if c := context.Cause(cctx); c != nil {
			return nil, nil, c
		}
		if d, ok := cctx.Deadline(); ok && !time.Now().Before(d) {
			return nil, nil, errClusterTime
		}
		return nil, nil, err
	}
	p.opts.Observer.Request(u.name, "GET", resp.StatusCode(), time.Since(start))
	data, err := readChunk(cctx, resp, p.opts.ListLimits.MaxBytes+1, buf, fl.lease)
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > p.opts.ListLimits.MaxBytes {
		return nil, nil, fmt.Errorf("fleet list: %w", listquery.ErrTooLarge)
	}
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		return nil, &FleetFailure{Cluster: u.name, Code: code, Message: statusMessage(code, data)}, nil
	}
	return data, nil, nil
}

// statusMessage is the message of a cluster's Status answer, shortened;
// or the HTTP status text.
func statusMessage(code int, body []byte) string {
	msg := gjson.GetBytes(body, "message").Str
	if msg == "" {
		msg = fasthttp.StatusMessage(code)
	}
	return cleanMessage(msg, fleetFailureMessageLength)
}

// cleanMessage makes a cluster's text fit a Warning header: valid UTF-8
// without control characters (NewWarningHeader refuses them, and the
// cluster's failure would go unnamed), cut to at most n bytes on a
// character boundary.
func cleanMessage(msg string, n int) string {
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(msg, "\uFFFD"))
	if len(msg) <= n {
		return msg
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// addFleetWarnings names each cluster left out in a Warning header, which
// kubectl and client-go print.
func addFleetWarnings(ctx *fasthttp.RequestCtx, failed []FleetFailure) {
	for i, f := range failed {
		if i == maxFleetWarnings {
			if w, err := utilnet.NewWarningHeader(299, "-", fmt.Sprintf("%d more clusters left out: see the List's metadata, berth.dev/failed-clusters", len(failed)-i)); err == nil {
				ctx.Response.Header.Add("Warning", w)
			}
			return
		}
		if w, err := utilnet.NewWarningHeader(299, "-", fmt.Sprintf("cluster %q left out (%d): %s", f.Cluster, f.Code, f.Message)); err == nil {
			ctx.Response.Header.Add("Warning", w)
		}
	}
}

// writeFleetFailure answers a fleet request every cluster failed: 502,
// naming each.
func writeFleetFailure(ctx *fasthttp.RequestCtx, failed []FleetFailure) {
	var b strings.Builder
	b.WriteString("no cluster answered:")
	for i, f := range failed {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %q %d %s", f.Cluster, f.Code, f.Message)
	}
	WriteStatus(ctx, fasthttp.StatusBadGateway, b.String())
	addFleetWarnings(ctx, failed)
}

// writeParamError answers a list parameter that does not parse.
func writeParamError(ctx *fasthttp.RequestCtx, err error) {
	var pe *listquery.ParamError
	if errors.As(err, &pe) {
		WriteStatus(ctx, fasthttp.StatusBadRequest, pe.Error())
		return
	}
	WriteStatus(ctx, fasthttp.StatusBadRequest, "invalid list parameters")
}
