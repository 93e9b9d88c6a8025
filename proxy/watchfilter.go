package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/proxy/listquery"
)

// A watch with selector= (on /proxy/clusters/<name>/… or the fleet path)
// passes only the events of objects that match, with the semantics the
// API server gives field-selector watches: an object that starts matching
// arrives as ADDED, one that stops as DELETED, BOOKMARK and ERROR events
// pass untouched. A fleet watch merges one such stream per cluster, each
// event's object annotated with its cluster. Berth reads the events, so
// these watches are JSON (application/json) whatever the client asked.

// maxWatchEvent bounds one watch event Berth reads to filter. The API
// server stores objects of at most 1.5 MiB; their JSON is rarely more
// than twice that.
const maxWatchEvent = 16 << 20

// serveWatch answers a filtered watch on members (one for a single
// cluster; fleet for the fleet path). Parameters are checked before any
// stream opens: selector= must parse, and sort and page parameters are
// refused. Each member's stream is counted in its cluster's stream
// limits; a fleet watch covers at most MaxFleetWatches clusters.
func (p *Proxy) serveWatch(ctx *fasthttp.RequestCtx, t Target, members []FleetMember, fleet bool) {
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
	for _, name := range listquery.ParamNames() {
		if _, ok := values[name]; ok && name != listquery.ParamSelector {
			WriteStatus(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("a watch takes selector= only: %s applies to lists", name))
			return
		}
	}
	if !isCollection(t.Path) || isWatchPath(t.Path) || !queryBool(values, "watch") {
		WriteStatus(ctx, fasthttp.StatusBadRequest, "selector= applies to a watch of a collection (?watch=1 on …/pods), not to a single object, a legacy /watch/ path or a followed log")
		return
	}
	var sel listquery.Selector
	if q != nil {
		sel = q.Selector
	}
	if fleet && len(members) > p.opts.MaxFleetWatches {
		WriteStatus(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("a fleet watch opens one watch per cluster: this one would open %d, more than %d; narrow it with clusters= or clusterSelector=", len(members), p.opts.MaxFleetWatches))
		return
	}
	if len(members) == 0 {
		WriteStatus(ctx, fasthttp.StatusNotFound, "you reach no cluster through the fleet path")
		return
	}
	// Count every stream before opening any: all or none.
	parts := make([]*watchPart, 0, len(members))
	releaseAll := func() {
		for _, w := range parts {
			w.release()
		}
	}
	var failed []FleetFailure
	for _, m := range members {
		u := p.opts.Pool.get(m.Cluster)
		if u == nil {
			if !fleet {
				WriteStatus(ctx, fasthttp.StatusNotFound, fmt.Sprintf("cluster %q not found", m.Cluster))
				return
			}
			failed = append(failed, FleetFailure{Cluster: m.Cluster, Code: fasthttp.StatusServiceUnavailable, Message: fmt.Sprintf("cluster %q has no connection", m.Cluster)})
			continue
		}
		release, refusedBy := u.reserveStream(m.Identity.StreamKey, p.opts.Pool.opts.Streams)
		if release == nil {
			releaseAll()
			p.refuseStream(ctx, u, "watch", refusedBy)
			return
		}
		parts = append(parts, &watchPart{u: u, id: m.Identity, release: release})
	}
	values.Del(listquery.ParamSelector)
	query := values.Encode()
	var tag func(cluster string) *listquery.Tag
	if fleet {
		tag = func(c string) *listquery.Tag { return listquery.NewTag(FleetAnnotation, c) }
	}
	// Open them, at most FleetConcurrency at once. A fleet watch waits
	// FleetClusterTime for a cluster's answer: one that takes the
	// request and never answers would otherwise hold the whole watch,
	// and the stream slots taken on every other cluster, for as long as
	// it hangs (the client's leaving goes unnoticed until the headers
	// are sent). Its stuck request is left to end by itself, and gives
	// its slot back then (watchPart.opened).
	sem := make(chan struct{}, p.opts.FleetConcurrency)
	scheme, host := requestOrigin(ctx)
	for _, w := range parts {
		hdr := clientHeader(ctx)
		w.done = make(chan struct{})
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			w.open(p, hdr, scheme, host, Target{Cluster: w.u.name, Path: t.Path, Query: query})
			w.opened()
		}()
	}
	var timeout <-chan time.Time
	if fleet {
		timer := time.NewTimer(p.opts.FleetClusterTime)
		defer timer.Stop()
		timeout = timer.C
	}
	for _, w := range parts {
		select {
		case <-w.done:
		case <-timeout:
			timeout = closedTime // every later part is as late
		}
		if timeout == closedTime && w.abandon() {
			failed = append(failed, FleetFailure{Cluster: w.u.name, Code: fasthttp.StatusGatewayTimeout, Message: fmt.Sprintf("cluster %q did not answer within %s", w.u.name, p.opts.FleetClusterTime)})
		}
	}
	var open []*watchPart
	for _, w := range parts {
		if w.abandoned() {
			continue // its goroutine gives back what it holds
		}
		switch {
		case w.resp != nil:
			open = append(open, w)
			continue
		case !fleet && w.answer != nil:
			// One cluster: its refusal is the answer, as on the plain path.
			ctx.SetStatusCode(w.answer.StatusCode())
			copyResponseHeaders(&ctx.Response.Header, &w.answer.Header)
			ctx.SetBody(w.answer.Body())
			fasthttp.ReleaseResponse(w.answer)
		case !fleet:
			code, msg, _ := upstreamFailure(w.u, w.err)
			WriteStatus(ctx, code, msg)
		default:
			failed = append(failed, *w.failure)
		}
		w.release()
	}
	if len(open) == 0 {
		if fleet {
			writeFleetFailure(ctx, failed)
		}
		return
	}
	s := &watchStream{ch: make(chan []byte, 16), done: make(chan struct{}), conn: ctx.Conn(), writeTimeout: p.opts.StreamWriteTimeout}
	for _, w := range open {
		w.stream = s
		w.untrack = w.u.trackWithdrawable(w.abort, w.withdraw, w.id.StillAllowed)
		if !stillAllowed(w.id) {
			// Access went while the cluster was asked.
			for _, o := range open {
				o.untrack()
				o.abort()
				o.close()
			}
			p.accessWithdrawn(ctx, w.u, w.id)
			return
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	addFleetWarnings(ctx, failed)
	ctx.SetConnectionClose()
	ctx.Response.ImmediateHeaderFlush = true
	for _, w := range open {
		p.opts.Observer.StreamOpened(w.u.name, "watch")
		f := &eventFilter{sel: sel}
		if tag != nil {
			f.tag = tag(w.u.name)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer p.opts.Observer.StreamClosed(w.u.name, "watch")
			w.run(f)
		}()
	}
	go func() {
		s.wg.Wait()
		close(s.ch)
	}()
	if s.conn != nil {
		s.watch = watchClient(s.conn, s.abort)
	}
	s.parts = open
	ctx.SetBodyStream(s, -1)
}

// watchPart is one cluster's upstream watch in a filtered or fleet watch.
type watchPart struct {
	u       *upstream
	id      Identity
	release func() // the stream's count in the limits
	untrack func()

	// Set by open: the stream (resp, body), or why not.
	resp    *fasthttp.Response
	body    io.Reader
	answer  *fasthttp.Response // a refusal of the cluster's own
	err     error
	failure *FleetFailure

	// done is closed when open has returned and the part is handed to
	// serveWatch; state is partOpening, partOpened or partAbandoned.
	done  chan struct{}
	state atomic.Int32

	stream    *watchStream
	withdrawn atomic.Bool
	abortOnce sync.Once
	closeOnce sync.Once
}

// open asks the cluster for the watch, as JSON.
func (w *watchPart) open(p *Proxy, hdr *fasthttp.RequestHeader, scheme, host string, t Target) {
	req := fleetRequest(hdr, w.u, t, w.id)
	req.Header.Set("Accept", "application/json")
	req.Header.Del("Accept-Encoding")
	resp := fasthttp.AcquireResponse()
	start := time.Now()
	err := w.u.streamClient.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		w.err = err
		code, msg, _ := upstreamFailure(w.u, err)
		w.failure = &FleetFailure{Cluster: w.u.name, Code: code, Message: msg}
		return
	}
	p.opts.Observer.Request(w.u.name, "GET", resp.StatusCode(), time.Since(start))
	foreign := false
	if code := resp.StatusCode(); code >= 300 && code <= 399 && len(resp.Header.Peek(fasthttp.HeaderLocation)) > 0 {
		foreign = !sameOrigin(string(resp.Header.Peek(fasthttp.HeaderLocation)), scheme, host)
	}
	if resp.StatusCode() != fasthttp.StatusOK || foreign {
		// Read the refusal whole (a Status is small), for its message.
		body, _ := readAllLimit(resp, 1<<20, new(bytes.Buffer))
		code := resp.StatusCode()
		if foreign {
			code, body = fasthttp.StatusBadGateway, nil
			resp.Header.Del(fasthttp.HeaderLocation)
		}
		resp.SetBody(body)
		w.answer = resp
		w.failure = &FleetFailure{Cluster: w.u.name, Code: code, Message: statusMessage(code, body)}
		return
	}
	w.resp, w.body = resp, resp.BodyStream()
	if w.body == nil {
		w.body = &bodyBytes{b: resp.Body()}
	}
}

const (
	partOpening int32 = iota
	partOpened
	partAbandoned
)

// closedTime is a channel that is always ready: the fleet watch's wait
// for its clusters is over.
var closedTime = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// opened hands the part to serveWatch, or, if serveWatch stopped waiting
// for it, gives back all it holds: the cluster's answer and its stream
// slot.
func (w *watchPart) opened() {
	if w.state.CompareAndSwap(partOpening, partOpened) {
		close(w.done)
		return
	}
	if w.resp != nil {
		fasthttp.ReleaseResponse(w.resp)
	}
	if w.answer != nil {
		fasthttp.ReleaseResponse(w.answer)
	}
	w.release()
}

// abandon stops waiting for the part: true unless it has just opened.
func (w *watchPart) abandon() bool {
	return w.state.CompareAndSwap(partOpening, partAbandoned)
}

func (w *watchPart) abandoned() bool { return w.state.Load() == partAbandoned }

type bodyBytes struct{ b []byte }

func (r *bodyBytes) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// abort interrupts a read blocked on the cluster.
func (w *watchPart) abort() {
	w.abortOnce.Do(func() {
		if c, ok := w.body.(fasthttp.ReadCloserWithError); ok {
			_ = c.CloseWithError(errClientGone)
		}
	})
}

// withdraw ends this cluster's part because its caller lost access there;
// the stream says so with an ERROR event.
func (w *watchPart) withdraw() {
	w.withdrawn.Store(true)
	w.abort()
}

// close gives back what the part holds.
func (w *watchPart) close() {
	w.closeOnce.Do(func() {
		if w.untrack != nil {
			w.untrack()
		}
		if w.resp != nil {
			fasthttp.ReleaseResponse(w.resp)
		}
		w.release()
	})
}

// run reads the cluster's events, passes what the filter lets through to
// the stream, and ends with the stream or the cluster's.
func (w *watchPart) run(f *eventFilter) {
	defer w.close()
	s := w.stream
	lines := &eventLines{r: bufio.NewReaderSize(w.body, watchReadBuffer)}
	for {
		line, err := lines.next()
		if errors.Is(err, errEventTooLarge) {
			s.send(errorEvent(fasthttp.StatusBadGateway, fmt.Sprintf("cluster %q sent a watch event larger than %d bytes", w.u.name, maxWatchEvent)))
			return
		}
		// A line cut by the end of the stream is no whole event.
		if err == nil && len(bytes.TrimSpace(line)) > 0 {
			if out := f.event(line); out != nil && !s.send(out) {
				return
			}
		}
		if err != nil {
			if w.withdrawn.Load() {
				s.send(errorEvent(refusal(w.id, w.u.name)))
			}
			return
		}
	}
}

// A filtered watch reads each cluster's events a line at a time. One
// member's fleet watches may hold thousands of cluster streams (64 clusters
// each, up to the per-principal stream limit on every cluster), so what
// one stream keeps between events is small: a read buffer of
// watchReadBuffer, and a line buffer that is dropped after an event larger
// than keptEventBuffer rather than kept at its peak for the life of the
// watch.
const (
	watchReadBuffer = 8 << 10
	keptEventBuffer = 64 << 10
)

var errEventTooLarge = errors.New("watch event too large")

// eventLines reads newline-ended watch events.
type eventLines struct {
	r    *bufio.Reader
	line []byte
}

// next returns the next line (valid until the next call), and the read's
// error; errEventTooLarge past maxWatchEvent.
func (l *eventLines) next() ([]byte, error) {
	if cap(l.line) > keptEventBuffer {
		l.line = nil
	}
	l.line = l.line[:0]
	for {
		frag, err := l.r.ReadSlice('\n')
		l.line = append(l.line, frag...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return l.line, err
		}
		if len(l.line) > maxWatchEvent {
			return nil, errEventTooLarge
		}
	}
}

// watchStream merges the parts' events into one response body.
type watchStream struct {
	ch    chan []byte
	done  chan struct{}
	wg    sync.WaitGroup
	parts []*watchPart

	conn         net.Conn
	writeTimeout time.Duration
	watch        func()
	pending      []byte

	abortOnce, closeOnce sync.Once
}

// send queues one event; false once the stream is over.
func (s *watchStream) send(ev []byte) bool {
	select {
	case s.ch <- ev:
		return true
	case <-s.done:
		return false
	}
}

func (s *watchStream) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				return 0, io.EOF
			}
			s.pending = ev
		case <-s.done:
			return 0, io.EOF
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	if s.conn != nil {
		// A rolling deadline, as for a plain watch.
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	return n, nil
}

// abort ends every part: the client left.
func (s *watchStream) abort() {
	s.abortOnce.Do(func() {
		close(s.done)
		for _, w := range s.parts {
			w.abort()
		}
	})
}

// Close ends the stream and waits for its parts, which give back their
// connections and stream counts.
func (s *watchStream) Close() error {
	s.closeOnce.Do(func() {
		if s.watch != nil {
			s.watch()
		}
		s.abort()
		s.wg.Wait()
	})
	return nil
}

// eventFilter passes one cluster's watch events through a selector,
// tagging their objects for a fleet watch. It remembers, for each object
// it has seen an event of, whether it matched, so that an object that
// stops matching becomes DELETED and one that starts becomes ADDED. An
// object not seen since the watch began (it was in the list the client
// made before) that changes and does not match arrives as DELETED: the
// client may hold it, and deleting what one does not hold is harmless to
// informers, while keeping a stale object is not.
type eventFilter struct {
	sel   listquery.Selector
	tag   *listquery.Tag
	state map[string]bool // object key → matched at its last event
}

// event returns the event to pass for line (one JSON watch event with its
// newline), or nil to drop it.
func (f *eventFilter) event(line []byte) []byte {
	typ := gjson.GetBytes(line, "type").Str
	obj := gjson.GetBytes(line, "object")
	if f.tag != nil {
		// A fleet watch's client decodes what Berth passes, so every
		// event is rebuilt from what Berth read: passed as the cluster
		// sent it, a second type or object member (gjson reads the
		// first, Go and JSON.parse the last) could carry an untagged
		// object claiming another cluster.
		switch {
		case typ == "ERROR":
			raw := obj.Raw
			if raw == "" {
				raw = "null"
			}
			return f.rewrite(line, typ, gjson.Result{Type: gjson.JSON, Raw: raw}, true)
		case typ != "ADDED" && typ != "MODIFIED" && typ != "DELETED" && typ != "BOOKMARK", !obj.IsObject():
			return nil
		}
	}
	switch typ {
	case "ADDED", "MODIFIED", "DELETED":
	case "BOOKMARK":
		return f.rewrite(line, typ, obj, false)
	default: // ERROR, and anything new, untouched
		return append([]byte(nil), line...)
	}
	if !obj.IsObject() {
		return append([]byte(nil), line...)
	}
	if f.sel.Empty() {
		return f.rewrite(line, typ, obj, false)
	}
	if f.state == nil {
		f.state = map[string]bool{}
	}
	key := obj.Get("metadata.uid").Str
	if key == "" {
		key = obj.Get("metadata.namespace").Str + "/" + obj.Get("metadata.name").Str
	}
	match := f.sel.MatchTagged(obj.Raw, f.tag)
	was, known := f.state[key]
	out := ""
	switch typ {
	case "ADDED":
		if match {
			out = "ADDED"
		}
		f.state[key] = match
	case "MODIFIED":
		switch {
		case match && known && !was:
			out = "ADDED"
		case match:
			out = "MODIFIED"
		case !known || was:
			out = "DELETED"
		}
		f.state[key] = match
	case "DELETED":
		if match || was {
			out = "DELETED"
		}
		delete(f.state, key)
	}
	if out == "" {
		return nil
	}
	return f.rewrite(line, out, obj, out != typ)
}

// rewrite returns the event as typ with obj, tagged for a fleet watch, or
// line itself when nothing changes.
func (f *eventFilter) rewrite(line []byte, typ string, obj gjson.Result, changed bool) []byte {
	raw := obj.Raw
	if f.tag != nil && obj.IsObject() && typ != "ERROR" {
		tagged, err := f.tag.Apply(raw)
		if err != nil {
			return errorEvent(fasthttp.StatusBadGateway, fmt.Sprintf("a watch event of cluster %q could not be annotated", f.tag.Value))
		}
		raw, changed = tagged, true
	}
	if !changed {
		return append([]byte(nil), line...)
	}
	out := make([]byte, 0, len(raw)+len(typ)+24)
	out = append(out, `{"type":"`...)
	out = append(out, typ...)
	out = append(out, `","object":`...)
	out = append(out, raw...)
	out = append(out, "}\n"...)
	return out
}
