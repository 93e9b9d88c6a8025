package clusters

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/internal/readmap"
	"github.com/berthgw/berth/proxy"
)

// ProxyRoute sends authenticated traffic under /proxy/clusters/ (and
// KubeCube's /api/v1/cube/proxy/clusters/) to the proxy. It runs before the
// router and works on the raw request URI, because the router sees
// fasthttp's normalised path, in which "..", "%2F" and "//" are already
// resolved.
type ProxyRoute struct {
	svc   *Service
	authn *authn.Authenticator
	proxy *proxy.Proxy
	audit *audit.Log
}

// NewProxyRoute wires the proxy route.
func NewProxyRoute(svc *Service, a *authn.Authenticator, p *proxy.Proxy, au *audit.Log) *ProxyRoute {
	return &ProxyRoute{svc: svc, authn: a, proxy: p, audit: au}
}

// RoutePattern labels proxied requests in logs and metrics.
const RoutePattern = "/proxy/clusters/{name}/*"

// Wrap returns next with the proxy routes taken out in front of it.
func (pr *ProxyRoute) Wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		t, err := proxy.ParseTarget(ctx.RequestURI())
		if errors.Is(err, proxy.ErrNotProxy) {
			ft, ferr := proxy.ParseFleetTarget(ctx.RequestURI())
			if errors.Is(ferr, proxy.ErrNotProxy) {
				next(ctx)
				return
			}
			ctx.SetUserValue(router.MatchedRoutePathParam, FleetRoutePattern)
			if ferr != nil {
				proxy.WriteStatus(ctx, fasthttp.StatusBadRequest, ferr.Error())
				return
			}
			pr.serveFleet(ctx, ft)
			return
		}
		ctx.SetUserValue(router.MatchedRoutePathParam, RoutePattern)
		if err != nil {
			proxy.WriteStatus(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		pr.serve(ctx, t)
	}
}

func (pr *ProxyRoute) serve(ctx *fasthttp.RequestCtx, t proxy.Target) {
	// Taken before anything is read, so a stream can tell whether access
	// may have changed since this request was let through.
	checkedAt := pr.svc.changes.current()
	p, err := pr.authn.AuthenticateWithoutSession(ctx) // never a browser session: see docs/security.md
	if err != nil {
		writeAuthRefusal(ctx, t.Cluster, err)
		return
	}
	clientIP := pr.authn.ClientIP(ctx).String()
	acting, err := pr.svc.ProxyIdentity(p, t.Cluster, &ctx.Request.Header, Origin{ClientIP: clientIP, RequestID: httpapi.RequestID(ctx)})
	if fault.Is(err, fault.NotFound) {
		writeNoCluster(ctx, t.Cluster)
		return
	}
	if err != nil {
		// A refused kubectl --as is charged to the caller before it is
		// audited, so refusals cannot fill the audit log faster than
		// the caller may send requests.
		if ok, retry := pr.authn.AllowPrincipal(ratelimit.ScopeProxy, p); !ok {
			proxy.WriteTooManyRequests(ctx, retry)
			return
		}
		code, _ := httpapi.StatusOf(fault.KindOf(err))
		msg := "internal error"
		var fe *fault.Error
		if errors.As(err, &fe) && fe.Kind != fault.Internal {
			msg = fe.Message
		}
		pr.audit.Record(ctx, audit.Event{
			Category: "cluster", Action: "proxy.impersonate", ResourceType: "cluster", ResourceID: t.Cluster,
			Result: audit.ResultFailure, Reason: fault.KindOf(err).String(),
			ActorID: p.UserID, ActorName: p.Username, AuthMethod: p.AuthMethod, CredentialID: p.CredentialID,
			ClientIP: clientIP, UserAgent: string(ctx.UserAgent()), RequestID: httpapi.RequestID(ctx),
			Details: refusalDetails(&ctx.Request.Header, msg),
		})
		proxy.WriteRefusal(ctx, code, msg)
		return
	}
	if connected, status := acting.Connected(); !connected {
		proxy.WriteStatus(ctx, fasthttp.StatusServiceUnavailable, fmt.Sprintf("cluster %q is %s: Berth has no connection to it yet", t.Cluster, status))
		return
	}
	// The caller is charged, also when acting as someone else.
	if ok, retry := pr.authn.AllowPrincipal(ratelimit.ScopeProxy, p); !ok {
		proxy.WriteTooManyRequests(ctx, retry)
		return
	}
	id := acting.Identity
	if proxy.OpensStream(&ctx.Request.Header, t) {
		// Only a stream outlives this check; building its re-check for
		// every request would cost each a handful of allocations.
		id.StillAllowed, id.Refusal = pr.svc.streamAccessAs(pr.authn.Reauthenticator(ctx, p), acting, t.Cluster, id, checkedAt)
	}
	id.StreamKey = p.UserID // one stream budget per caller, however many keys they hold or users they act as
	pr.proxy.Serve(ctx, t, id)

	// Every request made as someone else is audited, reads too: whoever
	// reads the log must see all that was done under another's name.
	verb, audited := auditVerb(ctx, t)
	if !audited && acting.Impersonating() {
		verb, audited = "read", true
	}
	if audited {
		status := ctx.Response.StatusCode()
		if ctx.Hijacked() {
			status = fasthttp.StatusSwitchingProtocols
		}
		result := audit.ResultSuccess
		if status >= 400 {
			result = audit.ResultFailure
		}
		details := map[string]string{"method": string(ctx.Method()), "path": t.Path, "status": strconv.Itoa(status)}
		maps.Copy(details, acting.describe())
		pr.audit.Record(ctx, audit.Event{
			Category: "cluster", Action: "proxy." + verb, ResourceType: "cluster", ResourceID: t.Cluster,
			Result: result, ActorID: p.UserID, ActorName: p.Username, AuthMethod: p.AuthMethod, CredentialID: p.CredentialID,
			ClientIP: clientIP, UserAgent: string(ctx.UserAgent()), RequestID: httpapi.RequestID(ctx),
			Details: details,
		})
	}
}

// Metrics counts proxied traffic per cluster; it implements proxy.Observer.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	streams  *prometheus.GaugeVec
	refused  *prometheus.CounterVec
	// children keeps each label set's collectors, asked for on every
	// proxied request.
	children readmap.Map[requestLabels, requestChildren]
}

type requestLabels struct {
	cluster, method string
	code            int
}

type requestChildren struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// NewMetrics makes the per-cluster collectors; register them with
// Collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_proxy_requests_total", Help: "Requests forwarded to clusters, by cluster, method and status code.",
		}, []string{"cluster", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_proxy_upstream_latency_seconds", Help: "Time to the cluster's response headers, by cluster.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"cluster"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_proxy_open_streams", Help: "Watches and upgraded connections (exec, attach, port-forward) open now, by cluster.",
		}, []string{"cluster", "kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_proxy_streams_refused_total", Help: "Watches, log follows and upgrades refused with 429 by the stream limits, by cluster, kind and the limit reached (cluster or principal).",
		}, []string{"cluster", "kind", "limit"}),
	}
}

// Collectors returns what to register with the gateway's registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.latency, m.streams, m.refused}
}

// Request implements proxy.Observer. Labels take only bounded values: the
// cluster is a registered one (the route answers 404 before the proxy for
// any other), the method one of a fixed set, the code a valid status.
func (m *Metrics) Request(cluster, method string, code int, latency time.Duration) {
	l := requestLabels{cluster, middleware.MethodLabel(method), code}
	c := m.children.Get(l, func() requestChildren {
		return requestChildren{m.requests.WithLabelValues(l.cluster, l.method, codeLabel(l.code)), m.latency.WithLabelValues(l.cluster)}
	})
	c.requests.Inc()
	if latency > 0 {
		c.latency.Observe(latency.Seconds())
	}
}

// StreamOpened implements proxy.Observer.
func (m *Metrics) StreamOpened(cluster, kind string) { m.streams.WithLabelValues(cluster, kind).Inc() }

// StreamClosed implements proxy.Observer.
func (m *Metrics) StreamClosed(cluster, kind string) { m.streams.WithLabelValues(cluster, kind).Dec() }

// StreamRefused implements proxy.StreamLimitObserver.
func (m *Metrics) StreamRefused(cluster, kind, limit string) {
	m.refused.WithLabelValues(cluster, kind, limit).Inc()
}
