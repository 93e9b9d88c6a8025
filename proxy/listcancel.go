package proxy

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Why a list's work stopped early, as context causes.
var (
	errListClientGone  = errors.New("the client closed the connection")
	errListTimeBudget  = errors.New("list time budget spent")
	errListAbortedRead = errors.New("list fetch stopped")
)

// listContext returns the context a list's work runs under: it ends when
// Options.ListTimeBudget is spent (cause errListTimeBudget) or when the
// client closes its connection (cause errListClientGone), so fetching,
// scanning and sorting stop instead of running on for nobody. stop ends
// the watch on the client and must be called before the handler returns;
// if the client sent bytes meanwhile (a pipelined request, read by the
// watch and so lost to the server), stop marks the connection to close
// after this response.
func (p *Proxy) listContext(ctx *fasthttp.RequestCtx) (context.Context, func()) {
	c, cancel := context.WithCancelCause(context.Background())
	c, cancelTimer := context.WithTimeoutCause(c, p.opts.ListTimeBudget, errListTimeBudget)
	var stopWatch func() bool
	if conn := ctx.Conn(); conn != nil {
		stopWatch = watchListClient(conn, func() { cancel(errListClientGone) })
	}
	return c, func() {
		if stopWatch != nil && stopWatch() {
			ctx.SetConnectionClose()
		}
		cancelTimer()
		cancel(nil)
	}
}

// watchListClient calls gone when the client closes the connection while
// its list is being prepared. The server reads nothing from a connection
// while its handler runs, and fasthttp only learns that a client left when
// it writes the answer — for a large list, after all the work. So it
// reads the connection in the background; an HTTP/1.1 client that waits
// for its answer sends nothing, so the read returns only on EOF or an
// error. stop ends the read (with a deadline in the past, then clears the
// deadline for the server's next request) and reports whether it consumed
// bytes the client sent ahead.
//
// Unlike watchClient (streams), the connection stays open for the next
// request after an ordinary list.
func watchListClient(conn net.Conn, gone func()) (stop func() (readAhead bool)) {
	done := make(chan struct{})
	var stopping, ahead atomic.Bool
	_ = conn.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		var b [1]byte
		n, _ := conn.Read(b[:])
		switch {
		case n > 0:
			ahead.Store(true)
		case !stopping.Load():
			gone()
		}
	}()
	return func() bool {
		stopping.Store(true)
		_ = conn.SetReadDeadline(time.Now())
		<-done
		_ = conn.SetReadDeadline(time.Time{})
		return ahead.Load()
	}
}
