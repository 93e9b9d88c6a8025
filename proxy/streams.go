package proxy

import (
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Long-lived streams — watches, followed logs, exec, attach and
// port-forward — hold a connection to the cluster for as long as they
// last. Left alone, one member opening a thousand watches would take every
// connection of the cluster's pool and leave everyone else's requests
// waiting for one. So streams are counted per cluster and per principal
// (StreamLimits), refused with 429 past either limit, and never use the
// pool ordinary requests use: watches and followed logs have a pool of
// their own (upstream.streamClient, sized to the per-cluster limit) and
// upgrades dial a connection of their own.

// StreamLimits bound the long-lived streams open at once.
type StreamLimits struct {
	// PerCluster bounds the streams open on one cluster, everyone's
	// together; it also sizes the cluster's stream connection pool.
	PerCluster int
	// PerPrincipal bounds the streams one principal (Identity.StreamKey)
	// has open on one cluster.
	PerPrincipal int
	// RetryAfter is what a refused stream's Retry-After says.
	RetryAfter time.Duration
}

// Default stream limits, used for unset fields.
const (
	DefaultStreamsPerCluster   = 512
	DefaultStreamsPerPrincipal = 64
	DefaultStreamRetryAfter    = 10 * time.Second
)

func (l StreamLimits) withDefaults() StreamLimits {
	if l.PerCluster <= 0 {
		l.PerCluster = DefaultStreamsPerCluster
	}
	if l.PerPrincipal <= 0 {
		l.PerPrincipal = DefaultStreamsPerPrincipal
	}
	if l.RetryAfter <= 0 {
		l.RetryAfter = DefaultStreamRetryAfter
	}
	return l
}

// StreamLimitObserver is an optional part of an Observer: it hears of
// streams refused by StreamLimits. limit is "cluster" or "principal".
type StreamLimitObserver interface {
	StreamRefused(cluster, kind, limit string)
}

// streamCount is one upstream's count of open streams, in total and by
// principal. Its fields are guarded by the upstream's liveMu.
type streamCount struct {
	total int
	by    map[string]int
}

// reserveStream counts a stream about to open for key (which may be empty:
// then only the cluster's limit applies), or says which limit refuses it.
// The returned release must be called when the stream ends or fails to
// open; calls after the first do nothing.
func (u *upstream) reserveStream(key string, lim StreamLimits) (release func(), refusedBy string) {
	u.liveMu.Lock()
	defer u.liveMu.Unlock()
	if u.count.total >= lim.PerCluster {
		return nil, "cluster"
	}
	if key != "" && u.count.by[key] >= lim.PerPrincipal {
		return nil, "principal"
	}
	u.count.total++
	if key != "" {
		if u.count.by == nil {
			u.count.by = map[string]int{}
		}
		u.count.by[key]++
	}
	released := false
	return func() {
		u.liveMu.Lock()
		defer u.liveMu.Unlock()
		if released {
			return
		}
		released = true
		u.count.total--
		if key != "" {
			if u.count.by[key]--; u.count.by[key] <= 0 {
				delete(u.count.by, key)
			}
		}
	}, ""
}

// admitStream counts a stream of kind about to open for id on u, or
// answers 429 and returns nil when a limit refuses it.
func (p *Proxy) admitStream(ctx *fasthttp.RequestCtx, u *upstream, id Identity, kind string) (release func()) {
	release, refusedBy := u.reserveStream(id.StreamKey, p.opts.Pool.opts.Streams)
	if release == nil {
		p.refuseStream(ctx, u, kind, refusedBy)
	}
	return release
}

// refuseStream answers a stream over a limit: 429 with Retry-After, as the
// API server does when it sheds load, and counts it.
func (p *Proxy) refuseStream(ctx *fasthttp.RequestCtx, u *upstream, kind, limit string) {
	if o, ok := p.opts.Observer.(StreamLimitObserver); ok {
		o.StreamRefused(u.name, kind, limit)
	}
	lim := p.opts.Pool.opts.Streams
	// Debug, not Info: a flood would flood the log; the counter shows it.
	p.log.Debug("proxy stream refused", "cluster", u.name, "kind", kind, "limit", limit)
	msg := fmt.Sprintf("too many open watches, log follows and exec sessions on cluster %q", u.name)
	if limit == "principal" {
		msg = fmt.Sprintf("too many open watches, log follows and exec sessions of yours on cluster %q (at most %d)", u.name, lim.PerPrincipal)
	}
	secs := retryAfterSeconds(lim.RetryAfter)
	WriteStatus(ctx, fasthttp.StatusTooManyRequests, fmt.Sprintf("%s, retry after %d seconds", msg, secs))
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
}
