// Package metrics exposes Berth's Prometheus metrics: HTTP requests by route
// and status, latency, requests in flight, and store sizes.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/internal/readmap"
)

// Registry owns Berth's metrics. Each gateway gets its own, so tests that
// start several gateways in one process do not collide.
type Registry struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// children keeps each label set's collectors: WithLabelValues
	// validates and hashes its labels on every call, twice a request.
	children readmap.Map[httpLabels, httpChildren]
}

type httpLabels struct {
	route, method string
	code          int
}

type httpChildren struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

// New makes a registry with the Go runtime and process collectors.
func New() *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
	}
	r.reg.MustRegister(r.requests, r.latency, r.inFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Register adds more collectors (the store's sizes, the proxy's per-cluster
// metrics, the plugin host's state).
func (r *Registry) Register(cs ...prometheus.Collector) { r.reg.MustRegister(cs...) }

// Middleware counts and times each request by its route pattern, never by
// its raw path, so cardinality stays bounded.
func (r *Registry) Middleware() middleware.Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			start := time.Now()
			r.inFlight.Inc()
			defer r.inFlight.Dec()
			next(ctx)
			l := httpLabels{middleware.Route(ctx), middleware.MethodLabel(string(ctx.Method())), ctx.Response.StatusCode()}
			c := r.children.Get(l, func() httpChildren {
				return httpChildren{r.requests.WithLabelValues(l.route, l.method, strconv.Itoa(l.code)), r.latency.WithLabelValues(l.route, l.method)}
			})
			c.requests.Inc()
			c.latency.Observe(time.Since(start).Seconds())
		}
	}
}

// Handler serves the Prometheus text format.
func (r *Registry) Handler() httpapi.Handler {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	return func(ctx *fasthttp.RequestCtx) error {
		h(ctx)
		return nil
	}
}

// StoreSizes reports the store's on-disk sizes at scrape time.
func StoreSizes(sizes func() (lsm, vlog int64)) prometheus.Collector {
	return &storeCollector{
		sizes: sizes,
		desc: prometheus.NewDesc("berth_store_size_bytes",
			"Bytes the embedded Badger store uses on disk, by part.", []string{"part"}, nil),
	}
}

type storeCollector struct {
	sizes func() (int64, int64)
	desc  *prometheus.Desc
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	lsm, vlog := c.sizes()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lsm), "lsm")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(vlog), "vlog")
}
