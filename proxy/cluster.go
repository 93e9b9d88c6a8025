package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Cluster is what the proxy needs to reach one cluster's API server with
// the gateway's own credentials.
type Cluster struct {
	Name string
	// Server is the API server URL, https://host[:port][/path-prefix].
	Server string
	// CAData is the PEM bundle that signs the server's certificate; empty
	// means the system roots.
	CAData []byte
	// TLSServerName overrides the name checked in the server certificate.
	TLSServerName string
	// Token is a bearer token for the gateway's identity, or empty when a
	// client certificate is used.
	Token string
	// ClientCertData and ClientKeyData are a PEM client certificate pair.
	ClientCertData, ClientKeyData []byte
}

// upstream is one cluster's connection pool and how to address it.
type upstream struct {
	name     string
	scheme   string
	host     string // host:port
	basePath string // path prefix of Server, without trailing slash
	// authorization is the Authorization header for the cluster's
	// token (empty without one).
	authorization []byte
	tls           *tls.Config
	client        *fasthttp.HostClient
	// streamClient carries watches and followed logs, so that they never
	// take the connections ordinary requests need (see streams.go).
	streamClient *fasthttp.HostClient

	// live holds the long-lived streams (watches, followed logs, exec and
	// port-forward) running on this upstream, so that deleting or
	// re-registering the cluster ends them instead of leaving them on a
	// server and credentials Berth no longer holds, and so that Recheck
	// can end those whose caller lost access.
	liveMu  sync.Mutex
	live    map[*liveStream]struct{}
	retired bool
	count   streamCount
}

// liveStream is one long-lived stream: how to end it, and (if the caller
// gave one) how to ask whether it may go on.
type liveStream struct {
	stop    func()
	allowed func() bool
	// withdraw, if set, is how Recheck ends the stream instead of stop:
	// a watch then tells its client why.
	withdraw func()
}

// track registers a long-lived stream and returns the function that
// unregisters it. On a retired upstream stop runs at once. Access may have
// been withdrawn between the caller's check and track, after the Recheck
// that withdrawal asked for had looked, so callers ask allowed once more
// after track (see stillAllowed).
func (u *upstream) track(stop func(), allowed func() bool) (untrack func()) {
	return u.trackWithdrawable(stop, nil, allowed)
}

// trackWithdrawable is track for a stream that Recheck ends with withdraw
// rather than stop, when its caller lost access.
func (u *upstream) trackWithdrawable(stop, withdraw func(), allowed func() bool) (untrack func()) {
	u.liveMu.Lock()
	if u.retired {
		u.liveMu.Unlock()
		stop()
		return func() {}
	}
	s := &liveStream{stop: stop, allowed: allowed, withdraw: withdraw}
	if u.live == nil {
		u.live = map[*liveStream]struct{}{}
	}
	u.live[s] = struct{}{}
	u.liveMu.Unlock()
	return func() {
		u.liveMu.Lock()
		delete(u.live, s)
		u.liveMu.Unlock()
	}
}

// streams returns the upstream's long-lived streams now.
func (u *upstream) streams() []*liveStream {
	u.liveMu.Lock()
	defer u.liveMu.Unlock()
	out := make([]*liveStream, 0, len(u.live))
	for s := range u.live {
		out = append(out, s)
	}
	return out
}

// withdraw unregisters s and ends it for lost access, unless it was
// already gone.
func (u *upstream) withdraw(s *liveStream) bool {
	u.liveMu.Lock()
	_, ok := u.live[s]
	delete(u.live, s)
	u.liveMu.Unlock()
	switch {
	case !ok:
	case s.withdraw != nil:
		s.withdraw()
	default:
		s.stop()
	}
	return ok
}

// retire ends the upstream's long-lived streams and closes its idle
// connections. Ordinary requests already running finish undisturbed.
func (u *upstream) retire() {
	u.endStreams(true)
	u.closeIdle()
}

// endStreams ends every long-lived stream on the upstream and returns how
// many; with retire, none may start on it afterwards.
func (u *upstream) endStreams(retire bool) int {
	u.liveMu.Lock()
	u.retired = u.retired || retire
	streams := make([]*liveStream, 0, len(u.live))
	for s := range u.live {
		streams = append(streams, s)
	}
	clear(u.live)
	u.liveMu.Unlock()
	for _, s := range streams {
		s.stop()
	}
	return len(streams)
}

// closeIdle closes the idle connections of both pools.
func (u *upstream) closeIdle() {
	u.client.CloseIdleConnections()
	u.streamClient.CloseIdleConnections()
}

// PoolOptions tune the connections to every cluster.
type PoolOptions struct {
	// MaxConnsPerCluster bounds concurrent connections to one cluster.
	MaxConnsPerCluster int
	// DialTimeout bounds TCP connect plus TLS handshake.
	DialTimeout time.Duration
	// IdleTimeout closes pooled connections unused for this long.
	IdleTimeout time.Duration
	// Streams bound the watches, followed logs and upgrades open at once.
	Streams StreamLimits
}

// Defaults of unset PoolOptions.
const (
	DefaultMaxConnsPerCluster = 1024
	DefaultDialTimeout        = 10 * time.Second
	DefaultIdleTimeout        = 90 * time.Second
)

func (o PoolOptions) withDefaults() PoolOptions {
	if o.MaxConnsPerCluster <= 0 {
		o.MaxConnsPerCluster = DefaultMaxConnsPerCluster
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	o.Streams = o.Streams.withDefaults()
	return o
}

// Pool holds one reused connection pool per cluster.
type Pool struct {
	opts PoolOptions
	mu   sync.RWMutex
	m    map[string]*upstream
}

// NewPool returns an empty pool.
func NewPool(opts PoolOptions) *Pool {
	return &Pool{opts: opts.withDefaults(), m: map[string]*upstream{}}
}

// Set adds or replaces a cluster. Replacing ends the old pool's watches,
// followed logs and upgrades (clients reconnect with the new settings) and
// closes its idle connections; ordinary requests already running on it
// finish undisturbed.
func (p *Pool) Set(c Cluster) error {
	u, err := newUpstream(c, p.opts)
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.m[c.Name]
	p.m[c.Name] = u
	p.mu.Unlock()
	if old != nil {
		old.retire()
	}
	return nil
}

// Remove drops a cluster, ends its watches, followed logs and upgrades, and
// closes its idle connections.
func (p *Pool) Remove(name string) { p.Detach(name) }

// Detach drops a cluster, ending its watches, followed logs and upgrades
// at once and closing its idle connections, and returns a handle that can
// still make the gateway's own calls to it until Close; nil if the pool
// does not know it. It is for cleaning up in a cluster being let go of: the name is free
// for a new cluster at once, and the handle keeps reaching the old one.
func (p *Pool) Detach(name string) *Detached {
	p.mu.Lock()
	u := p.m[name]
	delete(p.m, name)
	p.mu.Unlock()
	if u == nil {
		return nil
	}
	u.retire()
	return &Detached{u: u}
}

// Detached is a cluster taken out of the pool (Pool.Detach).
type Detached struct{ u *upstream }

// Do is Pool.Do on the detached cluster.
func (d *Detached) Do(method, path string, id Identity, contentType string, body []byte, timeout time.Duration) (int, []byte, error) {
	return d.u.do(method, path, id, contentType, body, timeout)
}

// Close closes the detached cluster's idle connections.
func (d *Detached) Close() { d.u.closeIdle() }

// Recheck asks every long-lived stream on every cluster whether it may go
// on (Identity.StillAllowed), ends those refused, and returns how many it
// ended. Streams opened without StillAllowed are left alone. The checks
// run outside the pool's locks, so they may read a store.
func (p *Pool) Recheck() int {
	ended := 0
	for _, u := range p.upstreams() {
		for _, s := range u.streams() {
			if s.allowed != nil && !s.allowed() && u.withdraw(s) {
				ended++
			}
		}
	}
	return ended
}

// EndStreams ends every long-lived stream on every cluster, as for a
// shutdown: a client watching (kubectl, an informer) sees its watch end
// and watches again, through another replica, instead of being cut when
// the drain times out. Returns how many it ended.
func (p *Pool) EndStreams() int {
	ended := 0
	for _, u := range p.upstreams() {
		ended += u.endStreams(false)
	}
	return ended
}

// upstreams returns the pool's clusters, for a pass outside its lock.
func (p *Pool) upstreams() []*upstream {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ups := make([]*upstream, 0, len(p.m))
	for _, u := range p.m {
		ups = append(ups, u)
	}
	return ups
}

// Has reports whether the pool knows the cluster.
func (p *Pool) Has(name string) bool { return p.get(name) != nil }

func (p *Pool) get(name string) *upstream {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.m[name]
}

// TLSConfig builds the client TLS configuration for a cluster. ALPN offers
// only http/1.1: upgrades (exec, port-forward) need HTTP/1.1 and the pool
// speaks it anyway.
func TLSConfig(c Cluster) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName, NextProtos: []string{"http/1.1"}}
	if len(c.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CAData) {
			return nil, errors.New("certificate_authority_data holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if len(c.ClientCertData) > 0 || len(c.ClientKeyData) > 0 {
		pair, err := tls.X509KeyPair(c.ClientCertData, c.ClientKeyData)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func newUpstream(c Cluster, opts PoolOptions) (*upstream, error) {
	if !ValidClusterName(c.Name) {
		return nil, fmt.Errorf("cluster %q: %w", c.Name, ErrBadClusterName)
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("cluster %q: server must be an https:// (or http://) URL without query or user info", c.Name)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443", "http": "80"}[u.Scheme])
	}
	tlsCfg, err := TLSConfig(c)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = u.Hostname()
	}
	client := newHostClient(host, u.Scheme == "https", tlsCfg, opts.MaxConnsPerCluster, opts)
	// Every stream counted in the cluster's limit has a connection here:
	// a stream is never left waiting for one.
	streamClient := newHostClient(host, u.Scheme == "https", tlsCfg, opts.Streams.PerCluster, opts)
	return &upstream{
		name:          c.Name,
		scheme:        u.Scheme,
		host:          host,
		basePath:      strings.TrimSuffix(u.EscapedPath(), "/"),
		authorization: bearerHeader(c.Token),
		tls:           tlsCfg,
		client:        client,

		streamClient: streamClient,
	}, nil
}

// newHostClient makes one connection pool to a cluster of at most
// maxConns connections.
func newHostClient(host string, isTLS bool, tlsCfg *tls.Config, maxConns int, opts PoolOptions) *fasthttp.HostClient {
	dialTimeout := opts.DialTimeout
	c := &fasthttp.HostClient{
		Addr:      host,
		IsTLS:     isTLS,
		TLSConfig: tlsCfg,
		Dial: func(addr string) (net.Conn, error) {
			return fasthttp.DialTimeout(addr, dialTimeout)
		},
		// The raw path must reach the cluster byte for byte.
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
		// Every response streams; list post-processing, and forward for
		// a small body of known length (smallBody), read it whole
		// explicitly.
		StreamResponseBody:    true,
		MaxConns:              maxConns,
		MaxIdleConnDuration:   opts.IdleTimeout,
		MaxConnWaitTimeout:    5 * time.Second,
		ReadBufferSize:        64 << 10,
		WriteTimeout:          30 * time.Second,
		ConnPoolStrategy:      fasthttp.LIFO,
		SecureErrorLogMessage: true,
	}
	c.RetryIfErr = func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
		if !retryOnFreshConn(req, attempts, err) {
			return false, false
		}
		// The cluster dropped a pooled connection (it restarted, or a
		// load balancer timed the connection out): it dropped the other
		// idle ones too, so the retry must dial a fresh one.
		c.CloseIdleConnections()
		return false, true
	}
	return c
}

// retryOnFreshConn says whether a failed round trip may be sent again, once:
// only when the connection turned out dead before a single response byte
// came back (fasthttp reports that as io.EOF, or the request's write failed
// on a reset or broken connection), and only for a safe method (GET, HEAD,
// OPTIONS) without a streamed body. Anything else may have reached the
// cluster and changed something, and a replayed POST could create an
// object twice; kubectl decides itself what to retry.
func retryOnFreshConn(req *fasthttp.Request, attempts int, err error) bool {
	if attempts > 1 || req.IsBodyStream() {
		return false
	}
	switch string(req.Header.Method()) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions:
	default:
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// ErrUnreachable means the cluster could not be connected to at all, as
// opposed to answering with an error.
var ErrUnreachable = errors.New("cluster unreachable")

// Version asks a cluster's /version with the gateway's own credential (no
// impersonation), for connection tests and the health probe.
func (p *Pool) Version(name string, timeout time.Duration) (string, error) {
	u := p.get(name)
	if u == nil {
		return "", fmt.Errorf("cluster %q: %w", name, ErrBadClusterName)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(u.uri(Target{Path: "/version"}))
	req.Header.Set("Accept", "application/json")
	if len(u.authorization) > 0 {
		req.Header.SetBytesV("Authorization", u.authorization)
	}
	req.SetTimeout(timeout)
	if err := u.client.Do(req, resp); err != nil {
		return "", fmt.Errorf("%w: %s", ErrUnreachable, shortNetError(err))
	}
	body, err := readAllLimit(resp, 1<<20, new(bytes.Buffer))
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrUnreachable, shortNetError(err))
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return "", fmt.Errorf("GET /version answered %d", resp.StatusCode())
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.GitVersion == "" {
		return "", errors.New("GET /version did not return a Kubernetes version")
	}
	return v.GitVersion, nil
}

// shortNetError keeps the kind of a network failure (refused, timeout,
// certificate) without the addresses fasthttp puts in its messages. It
// decides on the errors' types, never their text.
func shortNetError(err error) string {
	var (
		certErr   *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		recordErr tls.RecordHeaderError
		alert     tls.AlertError
	)
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.As(err, &certErr):
		return "server certificate not trusted"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dnsErr):
		return "host not found"
	case errors.As(err, &recordErr), errors.As(err, &alert):
		return "TLS handshake failed"
	default:
		return "connection failed"
	}
}

// Do sends one request of the gateway's own to a cluster, acting as id
// (through impersonation), and returns the status and body (at most
// 4 MiB). It serves the gateway's own API calls, such as creating a
// bootstrap token Secret for a join token.
func (p *Pool) Do(name, method, path string, id Identity, contentType string, body []byte, timeout time.Duration) (int, []byte, error) {
	u := p.get(name)
	if u == nil {
		return 0, nil, fmt.Errorf("cluster %q: %w", name, ErrBadClusterName)
	}
	return u.do(method, path, id, contentType, body, timeout)
}

func (u *upstream) do(method, path string, id Identity, contentType string, body []byte, timeout time.Duration) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(u.uri(Target{Path: path}))
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	setIdentity(&req.Header, u.authorization, id)
	req.SetBodyRaw(body)
	req.SetTimeout(timeout)
	if err := u.client.Do(req, resp); err != nil {
		return 0, nil, fmt.Errorf("%w: %s", ErrUnreachable, shortNetError(err))
	}
	data, err := readAllLimit(resp, 4<<20, new(bytes.Buffer))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s", ErrUnreachable, shortNetError(err))
	}
	return resp.StatusCode(), data, nil
}
