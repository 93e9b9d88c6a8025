// Package gateway assembles Berth's edge server: it opens the store, makes
// the TLS certificate, builds the middleware chain and router, serves HTTP
// and HTTPS with fasthttp, and shuts all of it down gracefully.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/billing"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/edgetls"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/health"
	"github.com/berthgw/berth/gateway/hostnames"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/join"
	"github.com/berthgw/berth/gateway/lifecycle"
	"github.com/berthgw/berth/gateway/metrics"
	"github.com/berthgw/berth/gateway/middleware"
	"github.com/berthgw/berth/gateway/nodes"
	"github.com/berthgw/berth/gateway/notify"
	"github.com/berthgw/berth/gateway/operations"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/sso"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/proxy"
)

// Version is Berth's version, set at build time with
// -ldflags "-X github.com/berthgw/berth/gateway.Version=…".
var Version = "dev"

// Options are what a Gateway is built from.
type Options struct {
	Config *config.Config
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// AccessLog, when set, is the writer Logger's JSON handler writes
	// to: access lines are then encoded straight onto it, in the same
	// shape, without building slog records (middleware.AccessLogJSON).
	// Leave it nil when Logger writes another format.
	AccessLog io.Writer
	// Stdout receives the one-time generated admin password; nil discards it.
	Stdout io.Writer
	// Clock is the time every part of Berth decides by (identity, rate
	// limits, audit, clusters, operations, plugins, certificates, the
	// store's TTLs); nil means time.Now. Tests move it instead of sleeping. Latencies are
	// measured on the monotonic clock regardless.
	Clock func() time.Time
}

// Gateway is one running edge server.
type Gateway struct {
	cfg *config.Config
	log *slog.Logger
	// accessLog is Options.AccessLog.
	accessLog io.Writer
	db        *store.DB
	box       *secretbox.Box
	metrics   *metrics.Registry
	ready     *health.Checker
	router    *router.Router
	server    *fasthttp.Server
	tls       *tls.Config
	edge      *edgetls.Manager // HTTPS certificates; nil without an HTTPS listener
	started   time.Time
	clock     func() time.Time

	// Identity, authentication, rate limits and audit; later routes (the
	// proxy, /join) use authn and limiter.
	audit       *audit.Log
	identity    *identity.Service
	authn       *authn.Authenticator
	limiter     *ratelimit.Limiter
	identityAPI *identity.Handlers
	// Single sign-on with OpenID Connect providers (security_wire.go).
	sso        *sso.Service
	ssoAPI     *sso.Handlers
	plugins    *pluginhost.Host
	notify     *notify.Service
	billing    *billing.Service
	billingAPI *billing.Handlers
	// hostnames is managed DNS (hostnames_wire.go).
	hostnames    *hostnames.Service
	hostnamesAPI *hostnames.Handlers
	notifyAPI    *notify.Handlers

	// The cluster registry and the Kubernetes proxy.
	clusters   *clusters.Service
	pool       *proxy.Pool // the connections to clusters; shutdown ends its streams
	clusterAPI *clusters.Handlers
	// operations runs cluster lifecycle work (clusters_wire.go).
	operations    *operations.Service
	operationsAPI *operations.Handlers
	proxyRoute    *clusters.ProxyRoute
	joinSvc       *join.Service
	joinAPI       *join.Handlers
	nodesAPI      *nodes.Handlers
	fleetOps      fleetOps // node history, break-glass kubeconfigs (fleetops_wire.go)

	// components are what Serve starts, in order, and stops in reverse
	// (components.go); serveErrs carries a listener's failure.
	components lifecycle.Sequence
	serveErrs  chan error

	httpLn, httpsLn net.Listener
	admin           *adminSocket
	stopping        atomic.Bool
}

// New opens the store and prepares everything short of listening.
func New(opts Options) (*Gateway, error) {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stdout := opts.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	// The one place the secret key is read: everything keyed by it (sealed
	// values, join-token digests) gets it from box.
	box, err := secretbox.Load(cfg.SecretKey, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	// Records with a TTL expire on the same clock identity, clusters and
	// the rest decide by.
	storeOpts, err := StoreOptions(cfg, log, clock)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(storeOpts)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg: cfg, log: log, accessLog: opts.AccessLog, db: db, box: box,
		metrics:   metrics.New(),
		ready:     health.NewChecker(),
		started:   clock(),
		clock:     clock,
		serveErrs: make(chan error, 2),
	}
	if err := g.init(stdout); err != nil {
		g.edge.Stop()
		_ = db.Close()
		return nil, err
	}
	return g, nil
}

func (g *Gateway) init(stdout io.Writer) error {
	if _, err := identity.EnsureAdmin(g.db, g.cfg.AdminPassword, stdout); err != nil {
		return err
	}
	if err := g.initTLS(); err != nil {
		return err
	}
	g.ready.Add("store", g.db.Ready)
	g.metrics.Register(metrics.StoreSizes(g.db.Sizes))
	if err := g.initSecurity(); err != nil {
		return err
	}
	if err := g.initPlugins(); err != nil {
		return err
	}
	if g.edge != nil && g.cfg.TLS.ACME.DNSProvider != "" {
		g.edge.SetDNSProvider(pluginDNS{plugins: g.plugins, name: g.cfg.TLS.ACME.DNSProvider})
	}
	if err := g.initClusters(); err != nil {
		return err
	}
	g.initFleetOps()
	g.initNotify()
	g.initBilling()
	if err := g.initHostnames(); err != nil {
		return err
	}
	router, err := g.routes()
	if err != nil {
		return err
	}
	g.router = router
	g.server = &fasthttp.Server{
		Handler: middleware.Chain(g.proxyRoute.Wrap(middleware.BufferBodyFrom(g.cfg.Limits.MaxBodyBytes, g.bodyReader)(g.router.Handler)),
			middleware.RequestID(),
			middleware.SecurityHeaders(),
			g.metrics.Middleware(),
			middleware.AccessLogJSON(g.log, g.accessLog, func(ctx *fasthttp.RequestCtx) string { return g.authn.ClientIP(ctx).String() }),
			middleware.Recover(g.log),
			refuseUnknownMethods,
			g.edge.Middleware(),
			g.authn.CORS("/api/", "/oauth/"),
		),
		ErrorHandler:          g.parseError,
		ConnState:             g.authn.ConnState,
		NoDefaultServerHeader: true,
		// fasthttp otherwise quotes the raw request bytes, Authorization
		// header included, in its parse-error messages.
		SecureErrorLogMessage: true,
		ReadTimeout:           g.cfg.Limits.ReadTimeout.D(),
		WriteTimeout:          g.cfg.Limits.WriteTimeout.D(),
		IdleTimeout:           g.cfg.Limits.IdleTimeout.D(),
		ReadBufferSize:        g.cfg.Limits.MaxHeaderBytes,
		MaxRequestBodySize:    g.cfg.Limits.MaxBodyBytes,
		// Bodies stream: the proxy passes them to the cluster as they
		// come, and BufferBody reads them (bounded) for the API's own
		// handlers. fasthttp then reads only the first 8 KiB itself.
		StreamRequestBody:            true,
		HeaderReceived:               g.bodyReadTimeout,
		ExpectHandler:                g.expectContinue,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{g.log},
	}
	g.addComponents()
	return nil
}

func (g *Gateway) routes() (*router.Router, error) {
	r := router.New()
	r.SaveMatchedRoutePath = true
	// Never redirect: a gateway that rewrites paths invites traversal games.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteError(ctx, fault.New(fault.NotFound, "no such path"))
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteError(ctx, fault.New(fault.MethodNotAllowed, "method %s is not allowed here", ctx.Method()))
	}
	r.GET("/healthz", g.handleHealthz)
	r.GET("/readyz", g.handleReadyz)
	r.GET("/.well-known/jwks.json", httpapi.Serve(g.log, g.identityAPI.JWKS))
	if err := g.authn.Mount(r, g.apiRoutes()); err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	return r, nil
}

// parseError answers requests fasthttp could not read, in the JSON error
// shape, before any middleware runs.
func (g *Gateway) parseError(ctx *fasthttp.RequestCtx, err error) {
	httpapi.SetRequestID(ctx, fmt.Sprintf("parse-%d", ctx.ConnID()))
	var e *fault.Error
	var netErr net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		e = fault.New(fault.TooLarge, "request body is larger than %d bytes", g.cfg.Limits.MaxBodyBytes)
	case errors.As(err, &small) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
		e = fault.New(fault.HeaderTooLarge, "request headers are larger than %d bytes", g.cfg.Limits.MaxHeaderBytes)
	case errors.As(err, &netErr) && netErr.Timeout():
		e = fault.New(fault.Timeout, "request not received in time")
	default:
		e = fault.New(fault.Invalid, "malformed HTTP request")
	}
	httpapi.WriteError(ctx, e)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetConnectionClose()
}

func (g *Gateway) handleHealthz(ctx *fasthttp.RequestCtx) {
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{
		"status":         "ok",
		"version":        Version,
		"uptime_seconds": int64(g.clock().Sub(g.started).Seconds()),
	})
}

func (g *Gateway) handleReadyz(ctx *fasthttp.RequestCtx) {
	failing := g.ready.Failing()
	if g.stopping.Load() {
		failing = append(failing, "shutting_down")
	}
	if len(failing) > 0 {
		httpapi.WriteJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"status": "not_ready", "failing": failing})
		return
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"status": "ready"})
}

// Listen binds the configured addresses and the admin socket. Split from
// Serve so callers (and tests using port 0) can learn the bound addresses.
func (g *Gateway) Listen() error {
	var err error
	if g.cfg.HTTP.Addr != "" {
		if g.httpLn, err = net.Listen("tcp", g.cfg.HTTP.Addr); err != nil {
			return fmt.Errorf("listen http %s: %w", g.cfg.HTTP.Addr, err)
		}
	}
	if g.cfg.HTTPS.Addr != "" {
		ln, err := net.Listen("tcp", g.cfg.HTTPS.Addr)
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("listen https %s: %w", g.cfg.HTTPS.Addr, err)
		}
		g.httpsLn = tls.NewListener(ln, g.tls)
	}
	admin, err := listenAdmin(g.cfg.DataDir, g.db, g.log)
	if err != nil {
		g.closeListeners()
		return err
	}
	g.admin = admin
	return nil
}

// closeListeners closes what Listen bound. Stopping the servers closes the
// listeners they served; this releases those no server ever took.
func (g *Gateway) closeListeners() {
	for _, ln := range []net.Listener{g.httpLn, g.httpsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	g.admin.closeListener()
}

// HTTPAddr is the bound plain-HTTP address, or "" when disabled.
func (g *Gateway) HTTPAddr() string { return addrOf(g.httpLn) }

// HTTPSAddr is the bound HTTPS address, or "" when disabled.
func (g *Gateway) HTTPSAddr() string { return addrOf(g.httpsLn) }

// CertificatePEM is the certificate HTTPS clients must trust when it is
// self-signed.
func (g *Gateway) CertificatePEM() []byte { return g.edge.CertificatePEM() }

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Serve starts the components (components.go) in order and serves until
// ctx is cancelled or a listener fails, then shuts down gracefully: it
// reports not ready, stops the components in reverse (the HTTP server
// first, letting in-flight requests finish within
// limits.shutdown_timeout), and closes the store. It returns nil after a
// clean shutdown.
func (g *Gateway) Serve(ctx context.Context) error {
	if err := g.components.Start(ctx); err != nil {
		return errors.Join(err, g.shutdown())
	}
	g.log.Info("berth serving", "version", Version, "http", g.HTTPAddr(), "https", g.HTTPSAddr())
	// Starting leaves garbage that an idle gateway would otherwise keep
	// resident until the runtime's forced collection two minutes later, and
	// then give back only slowly: the first start's admin password hash
	// alone is 19 MiB (Argon2id), and the heap goal set while it was live
	// lets the heap grow to twice that before the next collection. One
	// collection now, with the freed pages returned, costs a few
	// milliseconds once (docs/benchmarks.md, "Idle footprint").
	debug.FreeOSMemory()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-g.serveErrs:
		serveErr = fmt.Errorf("serve: %w", serveErr)
	}
	return errors.Join(serveErr, g.shutdown())
}

// shutdown stops what is running, in reverse order, then closes the store.
func (g *Gateway) shutdown() error {
	g.stopping.Store(true)
	g.log.Info("shutting down", "timeout", g.cfg.Limits.ShutdownTimeout.D().String())
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	errs := []error{g.components.Stop(ctx)}
	// A listener Serve never served is still open.
	g.closeListeners()
	if err := g.db.Close(); err != nil {
		errs = append(errs, err)
	}
	g.log.Info("stopped")
	return errors.Join(errs...)
}

// Close releases everything when Serve was never called.
func (g *Gateway) Close() error {
	g.closeListeners()
	g.edge.Stop()
	return g.db.Close()
}

// fasthttpLogger routes fasthttp's own messages (connection-level errors)
// to slog at debug: they are per-connection noise, not operator news.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}

// removeStale deletes a socket file left by a crashed process; the caller
// holds the store's lock, so no live server can own it.
func removeStale(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}
