// Package proxy forwards kubectl and REST traffic to Kubernetes clusters:
// one reused connection pool per cluster, the caller's identity sent as
// impersonation headers, watches and log follows streamed chunk by chunk,
// exec/attach/port-forward upgrades spliced both ways, and list responses
// filtered, sorted and paged on request (see proxy/listquery).
//
// The package knows nothing of the gateway: the gateway authenticates and
// authorizes the caller, then calls Proxy.Serve with a Target and Identity.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berthgw/berth/proxy/listquery"
)

// Observer receives per-cluster events, for metrics. The gateway
// implements it; the proxy stays free of any metrics library.
type Observer interface {
	// Request reports a forwarded request's status and time to the first
	// response byte.
	Request(cluster, method string, code int, latency time.Duration)
	// StreamOpened and StreamClosed bracket a long-lived stream; kind is
	// "watch" or "upgrade".
	StreamOpened(cluster, kind string)
	StreamClosed(cluster, kind string)
}

// Options configure a Proxy.
type Options struct {
	Pool *Pool
	// RequestTimeout bounds an ordinary (not streaming) request to the
	// cluster, including its response body.
	RequestTimeout time.Duration
	// StreamWriteTimeout cuts a stream whose client has stopped reading for
	// this long; a live watch runs for as long as the cluster keeps it.
	StreamWriteTimeout time.Duration
	// ListLimits bound each list fetched for post-processing: its bytes
	// and items read from the cluster (413 past them). They bound the
	// work of one list, not memory; ListMemoryBudget does that.
	ListLimits listquery.Limits
	// ListMemoryBudget bounds the bytes all lists being post-processed
	// hold at once — chunk buffers, kept items, bodies being written. A
	// list that would overrun it gets 429 (413 if it alone needs more).
	ListMemoryBudget int64
	// ListTimeBudget bounds the time one list may take to be fetched,
	// filtered and sorted (504 past it).
	ListTimeBudget time.Duration
	// MaxPageSize is the largest pageSize a caller may ask for.
	MaxPageSize int
	// MaxConcurrentLists caps lists being post-processed at once; more get
	// 429, because each may hold a large list in memory.
	MaxConcurrentLists int
	// ListChunkSize is the limit= used to fetch a list in chunks.
	ListChunkSize int
	// FleetConcurrency bounds the clusters one fleet request (the fleet
	// path) talks to at once.
	FleetConcurrency int
	// FleetClusterTime bounds the time one cluster of a fleet list may
	// take; a cluster slower than that is left out of the answer.
	FleetClusterTime time.Duration
	// MaxFleetWatches bounds the clusters one fleet watch covers, each an
	// upstream watch counted in that cluster's stream limits; a watch
	// over more is refused with 400.
	MaxFleetWatches int
	// MaxRequestBodyBytes bounds a request body on its way to the cluster;
	// zero means no bound. Bodies stream (the server must be set to stream
	// them); a declared length over the bound is refused with 413 before
	// the cluster is contacted, and a chunked body that grows past it is
	// cut and answered with 413.
	MaxRequestBodyBytes int64
	// BodyRate is the slowest a request body may arrive (see BodyRate);
	// zero fields take the defaults.
	BodyRate BodyRate
	// BodyTimeout bounds the reading of a whole request body, the server's
	// read timeout; zero means no bound beyond BodyRate.
	BodyTimeout time.Duration
	Observer    Observer
	Logger      *slog.Logger
}

// Proxy forwards requests to clusters in its Pool.
type Proxy struct {
	opts  Options
	lists chan struct{}
	// listsBy counts the list slots each principal (Identity.StreamKey)
	// holds, so one cannot take them all.
	listsMu sync.Mutex
	listsBy map[string]int
	budget  *listBudget
	log     *slog.Logger
}

// Defaults of unset Options; Berth's configs/berth.yaml states the same
// values (a test in package gateway checks).
const (
	DefaultRequestTimeout     = 60 * time.Second
	DefaultStreamWriteTimeout = 60 * time.Second
	DefaultMaxConcurrentLists = 4
	DefaultListChunkSize      = 500
	DefaultMaxListBytes       = 256 << 20
	DefaultMaxListItems       = 100_000
	DefaultListMemoryBudget   = 256 << 20
	DefaultListTimeBudget     = 30 * time.Second
)

// New makes a Proxy, filling unset options with defaults.
func New(opts Options) *Proxy {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.StreamWriteTimeout <= 0 {
		opts.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = listquery.DefaultMaxPageSize
	}
	if opts.MaxConcurrentLists <= 0 {
		opts.MaxConcurrentLists = DefaultMaxConcurrentLists
	}
	if opts.ListChunkSize <= 0 {
		opts.ListChunkSize = DefaultListChunkSize
	}
	if opts.FleetConcurrency <= 0 {
		opts.FleetConcurrency = DefaultFleetConcurrency
	}
	if opts.FleetClusterTime <= 0 {
		opts.FleetClusterTime = DefaultFleetClusterTime
	}
	if opts.MaxFleetWatches <= 0 {
		opts.MaxFleetWatches = DefaultMaxFleetWatches
	}
	if opts.ListLimits.MaxBytes <= 0 {
		opts.ListLimits.MaxBytes = DefaultMaxListBytes
	}
	if opts.ListLimits.MaxItems <= 0 {
		opts.ListLimits.MaxItems = DefaultMaxListItems
	}
	if opts.ListMemoryBudget <= 0 {
		opts.ListMemoryBudget = DefaultListMemoryBudget
	}
	if opts.ListTimeBudget <= 0 {
		opts.ListTimeBudget = DefaultListTimeBudget
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	opts.BodyRate = opts.BodyRate.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Proxy{opts: opts, lists: make(chan struct{}, opts.MaxConcurrentLists), budget: &listBudget{limit: opts.ListMemoryBudget}, log: log}
}

// ListMemory reports the bytes lists hold now, the most they held at once,
// and the budget, for metrics.
func (p *Proxy) ListMemory() ListMemory { return p.budget.snapshot() }

// ListStats counts the lists stopped early, by reason, for metrics.
func (p *Proxy) ListStats() ListStats { return p.budget.stats() }

type nopObserver struct{}

func (nopObserver) Request(string, string, int, time.Duration) {}
func (nopObserver) StreamOpened(string, string)                {}
func (nopObserver) StreamClosed(string, string)                {}

// Pool returns the proxy's cluster pool.
func (p *Proxy) Pool() *Pool { return p.opts.Pool }

// Serve forwards the request in ctx to t.Cluster on behalf of id. Errors are
// answered as Kubernetes Status objects.
func (p *Proxy) Serve(ctx *fasthttp.RequestCtx, t Target, id Identity) {
	// Last, over whatever the answer is: it is tenant content.
	defer setTenantHeaders(&ctx.Response.Header)
	u := p.opts.Pool.get(t.Cluster)
	if u == nil {
		WriteStatus(ctx, fasthttp.StatusNotFound, fmt.Sprintf("cluster %q not found", t.Cluster))
		return
	}
	if n := ctx.Request.Header.ContentLength(); p.opts.MaxRequestBodyBytes > 0 && int64(n) > p.opts.MaxRequestBodyBytes {
		p.bodyTooLarge(ctx)
		return
	}
	if isUpgrade(&ctx.Request.Header) {
		if release := p.admitStream(ctx, u, id, "upgrade"); release != nil {
			p.serveUpgrade(ctx, u, t, id, release)
		}
		return
	}
	defer addNearMissWarnings(&ctx.Response.Header, t.Query)
	switch {
	case hasListParams(t.Query) && isStream(t):
		// A watch with selector= is filtered (see serveWatch); sort and
		// page parameters are refused there.
		p.serveWatch(ctx, t, []FleetMember{{Cluster: t.Cluster, Identity: id}}, false)
	case hasListParams(t.Query):
		p.serveList(ctx, u, t, id)
	case isStream(t):
		if release := p.admitStream(ctx, u, id, "watch"); release != nil {
			p.forward(ctx, u, t, id, release)
		}
	default:
		p.forward(ctx, u, t, id, nil)
	}
}

// OpensStream reports whether Serve would treat the request as a
// long-lived stream (a watch, a followed log, an upgrade such as exec),
// the only requests that ask Identity.StillAllowed and Identity.Refusal:
// callers may leave those unset otherwise.
func OpensStream(h *fasthttp.RequestHeader, t Target) bool {
	return isUpgrade(h) || isStream(t)
}

func isUpgrade(h *fasthttp.RequestHeader) bool {
	return len(h.Peek("Upgrade")) > 0 && hasToken(h.Peek("Connection"), "upgrade")
}

// isStream reports whether a request opens a long-lived response: a watch
// (query or legacy /watch/ path) or a followed log. watch and follow mean
// what the API server makes of them — its own conversion, where every
// value but "0" and "false" (any case) is true, the empty value included —
// so that watch=yes or watch= is tracked, cut on revocation and kept out
// of list post-processing like watch=1. The query is read as net/http
// reads it for the API server: malformed pairs are skipped, the first of
// repeated values counts.
func isStream(t Target) bool {
	if isWatchPath(t.Path) {
		return true
	}
	if !mayName(t.Query, "watch", "follow") {
		return false
	}
	v, _ := url.ParseQuery(t.Query)
	return queryBool(v, "watch") || queryBool(v, "follow")
}

// queryBool reads a boolean query parameter with apimachinery's conversion
// for query parameters, the one the API server decodes ListOptions and
// PodLogOptions with.
func queryBool(v url.Values, name string) bool {
	in, ok := v[name]
	if !ok {
		return false
	}
	var out bool
	// It never fails, and needs no conversion scope.
	_ = runtime.Convert_Slice_string_To_bool(&in, &out, nil)
	return out
}

// isWatchPath reports whether path is under a group version's legacy watch
// prefix (/api/v1/watch/…, /apis/<group>/<version>/watch/…), and not merely
// a path with a namespace or object named "watch". It reads the path
// decoded, as the API server routes it: /api/v1/%77atch/pods is a watch.
func isWatchPath(path string) bool {
	if !mayName(path, "watch") {
		return false
	}
	segs := strings.SplitN(strings.TrimPrefix(decodedPath(path), "/"), "/", 5)
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		return segs[2] == "watch"
	case len(segs) >= 4 && segs[0] == "apis":
		return segs[3] == "watch"
	}
	return false
}

// mayName reports whether s, still percent-encoded, could name any of
// words once decoded: it spells one, or hides letters behind a '%'. Most
// requests name none, and are spared the parse that would tell for sure.
func mayName(s string, words ...string) bool {
	if strings.IndexByte(s, '%') >= 0 {
		return true
	}
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func (u *upstream) uri(t Target) string {
	s := u.scheme + "://" + u.host + u.basePath + t.Path
	if t.Query != "" {
		s += "?" + t.Query
	}
	return s
}

// newRequest builds the upstream request: the client's method, allowed
// headers and body, then the gateway's credential and impersonation.
func (p *Proxy) newRequest(ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity, upgrade bool) *fasthttp.Request {
	req, _ := p.newRequestBody(ctx, u, t, id, upgrade)
	return req
}

// newRequestBody is newRequest, also returning the reader of a streamed
// client body (nil if there is none), which knows why it failed.
func (p *Proxy) newRequestBody(ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity, upgrade bool) (*fasthttp.Request, *BodyReader) {
	req := fasthttp.AcquireRequest()
	req.Header.DisableNormalizing()
	req.URI().DisablePathNormalizing = true
	req.Header.SetMethodBytes(ctx.Method())
	copyRequestHeaders(&req.Header, &ctx.Request.Header, upgrade)
	setIdentity(&req.Header, u.authorization, id)
	req.SetRequestURI(u.uri(t))
	var body *BodyReader
	// A declared empty body is no body: nothing to stream, and the
	// request stays one that may be retried.
	if ctx.Request.IsBodyStream() && ctx.Request.Header.ContentLength() != 0 {
		var end time.Time
		if p.opts.BodyTimeout > 0 {
			end = ctx.Time().Add(p.opts.BodyTimeout)
		}
		body = NewBodyReader(ctx, p.opts.BodyRate, p.opts.MaxRequestBodyBytes, end)
		req.SetBodyStream(body, ctx.Request.Header.ContentLength())
	} else if b := ctx.Request.Body(); len(b) > 0 {
		req.SetBodyRaw(b)
	}
	return req, body
}

// bodyError answers a request whose body the client failed to send
// properly, if that is why the round trip failed: the client's fault, so
// a 4xx, and the connection is closed since the rest of the body is
// unread.
func (p *Proxy) bodyError(ctx *fasthttp.RequestCtx, u *upstream, body *BodyReader) bool {
	if body == nil || body.Err() == nil {
		return false
	}
	var code int
	var msg string
	switch body.Err() {
	case errBodyTooLarge:
		p.bodyTooLarge(ctx)
		p.opts.Observer.Request(u.name, string(ctx.Method()), fasthttp.StatusRequestEntityTooLarge, 0)
		return true
	case ErrBodyTooSlow:
		code, msg = fasthttp.StatusRequestTimeout, fmt.Sprintf("the request body arrived too slowly: each %d bytes must come within %s", p.opts.BodyRate.MinBytes, p.opts.BodyRate.Window)
	default:
		code, msg = fasthttp.StatusBadRequest, "the request body is malformed or ended early"
	}
	p.log.Info("proxy request body refused", "cluster", u.name, "status", code, "err", body.Err().Error())
	p.opts.Observer.Request(u.name, string(ctx.Method()), code, 0)
	WriteStatus(ctx, code, msg)
	ctx.SetConnectionClose()
	return true
}

// forward is the ordinary path: one request, the response streamed back
// (or, when small and of known length, read whole first: answerWhole).
// A stream (release set: a watch or followed log, counted in the stream
// limits) goes over the cluster's stream pool, and release runs when it
// ends.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity, release func()) {
	stream := release != nil
	handedOver := false
	defer func() {
		if stream && !handedOver {
			release()
		}
	}()
	req, reqBody := p.newRequestBody(ctx, u, t, id, false)
	if err := prefetchBody(req, reqBody); err != nil {
		fasthttp.ReleaseRequest(req)
		p.bodyError(ctx, u, reqBody)
		return
	}
	client := u.client
	if stream {
		client = u.streamClient
	} else {
		req.SetTimeout(p.opts.RequestTimeout)
	}
	resp := fasthttp.AcquireResponse()
	start := time.Now()
	err := client.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		if !p.bodyError(ctx, u, reqBody) {
			p.upstreamError(ctx, u, err)
		}
		return
	}
	// Reported once the answer is decided, with the status the client
	// gets: a refused redirect, a small body cut short or a stream whose
	// access was withdrawn is not the cluster's status line.
	latency := time.Since(start)
	defer func() { p.opts.Observer.Request(u.name, string(ctx.Method()), ctx.Response.StatusCode(), latency) }()
	if foreignRedirect(ctx, &resp.Header) {
		code := resp.StatusCode()
		fasthttp.ReleaseResponse(resp)
		p.refuseRedirect(ctx, u, code)
		return
	}
	body := resp.BodyStream()
	if body == nil {
		ctx.SetStatusCode(resp.StatusCode())
		copyResponseHeaders(&ctx.Response.Header, &resp.Header)
		ctx.SetBody(resp.Body())
		fasthttp.ReleaseResponse(resp)
		return
	}
	if n := resp.Header.ContentLength(); !stream && n >= 0 && n <= smallBody {
		p.answerWhole(ctx, u, resp, body, n)
		return
	}
	rb := &responseBody{resp: resp, stream: body}
	var untrack func()
	if stream {
		if isJSONWatch(resp) {
			rb.withdrawal = func() []byte { return errorEvent(refusal(id, u.name)) }
		}
		untrack = u.trackWithdrawable(rb.abort, rb.withdraw, id.StillAllowed)
		if !stillAllowed(id) {
			untrack()
			rb.abort()
			rb.Close()
			p.accessWithdrawn(ctx, u, id)
			return
		}
	}
	ctx.SetStatusCode(resp.StatusCode())
	copyResponseHeaders(&ctx.Response.Header, &resp.Header)
	if stream {
		// A stream ends with its connection: the client-gone watch below
		// may consume bytes a client pipelines after it.
		ctx.SetConnectionClose()
		// Send the headers now: a quiet watch may have no first byte for
		// minutes, and clients wait for the 200 before anything else.
		ctx.Response.ImmediateHeaderFlush = true
		conn := ctx.Conn()
		rb.conn, rb.writeTimeout = conn, p.opts.StreamWriteTimeout
		rb.watch = watchClient(conn, rb.abort)
		p.opts.Observer.StreamOpened(u.name, "watch")
		handedOver = true
		rb.onClose = func() {
			untrack()
			release()
			p.opts.Observer.StreamClosed(u.name, "watch")
		}
	}
	ctx.SetBodyStream(rb, resp.Header.ContentLength())
}

// smallBody is the largest response body of known length read whole
// before the client is answered, rather than streamed: the upstream
// connection goes back to the pool before the client is written to, and
// the response needs no stream wrapper. Most of what kubectl asks for
// (an object, discovery, a status) is this size; lists and logs are
// usually chunked or larger, and stream.
const smallBody = 16 << 10

// answerWhole answers with resp, whose body of length n (≤ smallBody) it
// reads whole from body first. A body that ends early or arrives too
// slowly is a failed round trip: the client gets a 502 or 504, not a
// truncated answer, and the upstream connection is discarded.
func (p *Proxy) answerWhole(ctx *fasthttp.RequestCtx, u *upstream, resp *fasthttp.Response, body io.Reader, n int) {
	defer fasthttp.ReleaseResponse(resp) // discards the connection unless the body was read to its end
	buf := ctx.Response.SwapBody(nil)    // the response's own pooled buffer, filled in place
	buf, err := readWhole(body, slices.Grow(buf[:0], n+1), n)
	if err == nil {
		err = resp.CloseBodyStream() // read to its end: the connection goes back to the pool
	}
	if err != nil {
		ctx.Response.SwapBody(buf[:0])
		// A timeout is told as any round trip's (upstreamFailure); any
		// other failure here is a body cut short.
		code, msg, _ := upstreamFailure(u, err)
		if code != fasthttp.StatusGatewayTimeout {
			code, msg = fasthttp.StatusBadGateway, fmt.Sprintf("cluster %q ended its response early", u.name)
		}
		p.log.Warn("proxy upstream error", "cluster", u.name, "err", err.Error())
		WriteStatus(ctx, code, msg)
		return
	}
	ctx.SetStatusCode(resp.StatusCode())
	copyResponseHeaders(&ctx.Response.Header, &resp.Header)
	ctx.Response.SwapBody(buf)
}

// errLongerBody: a body went on past its declared length.
var errLongerBody = errors.New("response body longer than its Content-Length")

// readWhole reads body, of declared length n, to its end into buf[:0]
// (whose capacity must exceed n, so a longer body shows).
func readWhole(body io.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:cap(buf)]
	read, empty := 0, 0
	for {
		m, err := body.Read(buf[read:])
		read += m
		if m == 0 && err == nil {
			if empty++; empty == 100 {
				return buf[:0], io.ErrNoProgress
			}
		}
		switch {
		case read > n:
			return buf[:0], errLongerBody
		case err == io.EOF && read < n:
			return buf[:0], io.ErrUnexpectedEOF
		case err == io.EOF:
			return buf[:n], nil
		case err != nil:
			return buf[:0], err
		}
	}
}

// stillAllowed asks id.StillAllowed, if it is set, whether a stream may
// go on.
func stillAllowed(id Identity) bool { return id.StillAllowed == nil || id.StillAllowed() }

// accessWithdrawn answers a stream whose caller lost access while the
// cluster was being asked to open it.
func (p *Proxy) accessWithdrawn(ctx *fasthttp.RequestCtx, u *upstream, id Identity) {
	code, msg := refusal(id, u.name)
	WriteStatus(ctx, code, msg)
	ctx.SetConnectionClose()
}

// requestOrigin returns the scheme and host by which the client reached
// Berth.
func requestOrigin(ctx *fasthttp.RequestCtx) (scheme, host string) {
	scheme = "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	return scheme, string(ctx.Host())
}

// refuseRedirect answers a cluster's redirect to another origin (see
// foreignRedirect) with 502: the cluster's answer is not one Berth serves.
// The Location is not repeated, since the cluster chose it.
func (p *Proxy) refuseRedirect(ctx *fasthttp.RequestCtx, u *upstream, code int) {
	p.log.Warn("proxy refused a redirect to another origin", "cluster", u.name, "code", code)
	WriteStatus(ctx, fasthttp.StatusBadGateway, fmt.Sprintf("cluster %q answered with a redirect to another origin, which Berth does not pass on", u.name))
}

// upstreamError answers a failed round trip, each kind of failure with a
// coherent code and Kubernetes reason (docs/clusters.md): 504 Timeout when
// the cluster did not answer in time, 503 ServiceUnavailable when it could
// not be reached (refused, reset, TLS handshake or certificate failure)
// or when Berth's connections to it are all busy. Details go to the log;
// the message names the kind, never an address.
func (p *Proxy) upstreamError(ctx *fasthttp.RequestCtx, u *upstream, err error) {
	code, msg, busy := upstreamFailure(u, err)
	p.log.Warn("proxy upstream error", "cluster", u.name, "err", err.Error())
	p.opts.Observer.Request(u.name, string(ctx.Method()), code, 0)
	WriteStatus(ctx, code, msg)
	if busy {
		// client-go waits and retries a 503 that carries Retry-After.
		ctx.Response.Header.Set("Retry-After", "1")
	}
}

// upstreamFailure is the code and message a failed round trip to u is
// answered with (see upstreamError); busy: Berth's connections to it were
// all in use.
func upstreamFailure(u *upstream, err error) (code int, msg string, busy bool) {
	var ne net.Error
	code = fasthttp.StatusServiceUnavailable
	msg = fmt.Sprintf("cluster %q is unreachable: %s", u.name, shortNetError(err))
	busy = errors.Is(err, fasthttp.ErrNoFreeConns)
	switch {
	case busy:
		msg = fmt.Sprintf("all of Berth's connections to cluster %q are busy", u.name)
	case errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || (errors.As(err, &ne) && ne.Timeout()):
		code = fasthttp.StatusGatewayTimeout
		msg = fmt.Sprintf("cluster %q did not answer in time", u.name)
	}
	return code, msg, busy
}

// responseBody streams an upstream body to the client. fasthttp's server
// reads it and writes (and flushes) one chunk per Read, so each watch event
// reaches the client as it arrives; it calls Close when done, which
// returns the upstream connection to the pool or closes it.
type responseBody struct {
	resp   *fasthttp.Response
	stream io.Reader

	// Set for long-lived streams only.
	conn         net.Conn
	writeTimeout time.Duration
	watch        func()
	onClose      func()

	// withdrawal, if set, is the event that ends a JSON watch when the
	// stream is ended for lost access (withdraw); pending is what is left
	// of it to send.
	withdrawal func() []byte
	withdrawn  atomic.Bool
	pending    []byte
	// midEvent is set while the bytes passed on so far end inside an
	// event: nothing may be added to the stream then.
	midEvent bool
	ended    bool

	abortOnce sync.Once
	closeOnce sync.Once
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.sendWithdrawal(p)
	}
	n, err := b.stream.Read(p)
	if n > 0 && b.conn != nil {
		// A rolling deadline: the write of this chunk must finish in
		// writeTimeout, but a quiet watch may last for hours.
		_ = b.conn.SetWriteDeadline(time.Now().Add(b.writeTimeout))
	}
	if n > 0 {
		b.midEvent = p[n-1] != '\n'
	}
	if err != nil && b.withdrawn.Load() && b.withdrawal != nil && !b.midEvent {
		// Cut for lost access: end with the event that says so, and
		// then a clean end of the stream. (The cut upstream read may
		// report io.EOF as well as an error.)
		b.ended, b.pending = true, b.withdrawal()
		return n, nil
	}
	return n, err
}

// sendWithdrawal passes on the rest of the withdrawal event, then io.EOF.
func (b *responseBody) sendWithdrawal(p []byte) (int, error) {
	if len(b.pending) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// withdraw ends the stream because its caller lost access.
func (b *responseBody) withdraw() {
	b.withdrawn.Store(true)
	b.abort()
}

// bodyTooLarge answers a request whose body is over MaxRequestBodyBytes,
// and closes the connection: the rest of the body is unread and must not
// be taken for the next request.
func (p *Proxy) bodyTooLarge(ctx *fasthttp.RequestCtx) {
	WriteStatus(ctx, fasthttp.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", p.opts.MaxRequestBodyBytes))
	ctx.SetConnectionClose()
}

// errClientGone tells fasthttp the upstream connection cannot be reused:
// the stream was cut before its end.
var errClientGone = errors.New("client went away")

// abort interrupts a Read blocked on the upstream, when the client left or
// the cluster was removed or replaced.
func (b *responseBody) abort() {
	b.abortOnce.Do(func() {
		if c, ok := b.stream.(fasthttp.ReadCloserWithError); ok {
			_ = c.CloseWithError(errClientGone)
		}
	})
}

// Close returns a fully read upstream connection to the pool (or closes a
// cut one) and ends the client watch.
func (b *responseBody) Close() error {
	b.closeOnce.Do(func() {
		if b.watch != nil {
			b.watch()
		}
		fasthttp.ReleaseResponse(b.resp)
		if b.onClose != nil {
			b.onClose()
		}
	})
	return nil
}

// watchClient notices a client that goes away while the upstream is quiet
// (fasthttp only learns of it on its next write). It reads the client
// connection in the background — the server is not reading it while the
// response streams — and calls gone on EOF or error. The returned stop
// function ends the watch and waits for it.
func watchClient(conn net.Conn, gone func()) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	var stopping sync.Once
	go func() {
		defer close(done)
		_ = conn.SetReadDeadline(time.Time{})
		var b [1]byte
		// Returns on EOF, a reset, or bytes of a pipelined request that
		// will not be served on a stream's connection: in every case the
		// stream ends, unless stop woke the read.
		_, _ = conn.Read(b[:])
		select {
		case <-stopped:
		default:
			gone()
		}
	}()
	return func() {
		stopping.Do(func() {
			close(stopped)
			_ = conn.SetReadDeadline(time.Now())
			<-done
		})
	}
}

// takeList takes one of Options.MaxConcurrentLists for a list of key's
// (Identity.StreamKey; "" counts only globally). One principal holds at
// most half the slots (at least one), so slow lists — a fleet list over
// many clusters above all — cannot starve everyone else's. ok is false
// when no slot is free for them; release gives the slot back.
func (p *Proxy) takeList(key string) (release func(), ok bool) {
	select {
	case p.lists <- struct{}{}:
	default:
		return nil, false
	}
	if key == "" {
		return func() { <-p.lists }, true
	}
	p.listsMu.Lock()
	defer p.listsMu.Unlock()
	if p.listsBy[key] >= max(1, (cap(p.lists)+1)/2) {
		<-p.lists
		return nil, false
	}
	if p.listsBy == nil {
		p.listsBy = map[string]int{}
	}
	p.listsBy[key]++
	return func() {
		p.listsMu.Lock()
		if p.listsBy[key]--; p.listsBy[key] <= 0 {
			delete(p.listsBy, key)
		}
		p.listsMu.Unlock()
		<-p.lists
	}, true
}
