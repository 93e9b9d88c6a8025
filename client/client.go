// Package client is a typed client for Berth's API as one signed-in user
// sees it, and the store of that user's credentials in their configuration
// directory. The `berth` command's client commands (login, clusters,
// kubeconfig, credential, …) are built on it; docs/cli.md describes them.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxAnswer bounds what the client reads of one answer: Berth's answers
// are small, and a server that streams without end must not fill memory.
const maxAnswer = 16 << 20

// TLS is how the client verifies Berth's certificate: with CAData (PEM)
// when set, else with the system's roots; Insecure skips verification.
type TLS struct {
	CAData   []byte
	Insecure bool
}

// HTTPClient returns an HTTP client that verifies servers as t says, with
// a timeout on every request. Proxies come from the environment, as for
// kubectl.
func HTTPClient(t TLS) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure}
	if len(t.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(t.CAData) {
			return nil, errors.New("the certificate authority holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		// A redirect would carry the bearer token to wherever it points
		// (net/http keeps Authorization on the same host): Berth never
		// redirects its API, so one is an error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// ParseServer checks and normalises Berth's address as a user typed it:
// https://host[:port][/path], or http:// to a loopback address (a password
// must not cross a network in clear text). The answer has no trailing
// slash.
func ParseServer(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("server %q: give Berth's address as https://host[:port]", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("server %q: no user, query or fragment in the address", raw)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return "", fmt.Errorf("server %q: plain http is only for 127.0.0.1 or localhost; use https://", raw)
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIError is a refusal from Berth: its status and its JSON error body
// ({"code", "error", "message", "request_id"}).
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s (HTTP %d, request %s)", msg, e.Status, e.RequestID)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// IsUnauthenticated reports whether err is Berth's 401.
func IsUnauthenticated(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

// IsNotFound reports whether err is Berth's 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// Client calls Berth's API at Server.
type Client struct {
	// Server is Berth's address, as ParseServer returns it.
	Server string
	HTTP   *http.Client
	// Token gives the bearer token of authenticated calls; forceNew asks
	// for one other than the last given (that one was refused). Nil for a
	// client that only signs in.
	Token func(ctx context.Context, forceNew bool) (string, error)
	// UserAgent names the caller in Berth's access log.
	UserAgent string
}

// call sends one request. in, when not nil, is sent as JSON; out, when not
// nil, receives the JSON answer. With auth, a 401 to the token given is
// retried once with a new one, which covers a token revoked or its signing
// key withdrawn before its expiry.
func (c *Client) call(ctx context.Context, method, path string, auth bool, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		token := ""
		if auth {
			if c.Token == nil {
				return errors.New("not signed in")
			}
			var err error
			if token, err = c.Token(ctx, attempt > 0); err != nil {
				return err
			}
		}
		data, err := c.send(ctx, method, path, token, body)
		if auth && attempt == 0 && IsUnauthenticated(err) {
			continue
		}
		if err != nil {
			return err
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("%s %s: the answer is not what Berth sends: %w", method, path, err)
			}
		}
		return nil
	}
}

// send is one round trip; it returns the body of a 2xx answer, or the
// refusal as *APIError.
func (c *Client) send(ctx context.Context, method, path, token string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, explainTransport(c.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, nil
	}
	ae := &APIError{Status: resp.StatusCode}
	var eb struct {
		Error     string `json:"error"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(data, &eb) == nil {
		ae.Code, ae.Message, ae.RequestID = eb.Error, eb.Message, eb.RequestID
	}
	if ae.Message == "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		ae.Message = "Berth answered with a redirect to " + strconv.Quote(resp.Header.Get("Location")) + ": check the server address"
	}
	return nil, ae
}

// explainTransport turns a certificate error into what to do about it.
func explainTransport(server string, err error) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%s's certificate is signed by an unknown authority: if Berth uses its self-signed certificate, fetch it (curl -k %s/ca.crt -o berth-ca.crt), check it, and pass --certificate-authority berth-ca.crt to berth login", server, server)
	case errors.As(err, &host):
		return fmt.Errorf("%s's certificate is not valid for this address: %v", server, host)
	case errors.As(err, &invalid):
		return fmt.Errorf("%s's certificate is not valid: %v", server, invalid)
	}
	return err
}

// Tokens is the answer of a sign-in or a refresh.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

func (t *Tokens) check() error {
	if t.AccessToken == "" || t.RefreshToken == "" || t.ExpiresIn <= 0 {
		return errors.New("Berth's answer holds no access and refresh token")
	}
	return nil
}

// Login signs in with a username and password.
func (c *Client) Login(ctx context.Context, username, password string) (*Tokens, error) {
	var t Tokens
	if err := c.call(ctx, http.MethodPost, "/api/v1/auth/login", false, map[string]string{"username": username, "password": password}, &t); err != nil {
		return nil, err
	}
	return &t, t.check()
}

// Refresh trades a refresh token for new tokens. Berth rotates refresh
// tokens: the one given is spent, and using it again ends the session.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	var t Tokens
	if err := c.call(ctx, http.MethodPost, "/api/v1/auth/refresh", false, map[string]string{"refresh_token": refreshToken}, &t); err != nil {
		return nil, err
	}
	return &t, t.check()
}

// Me is the caller as GET /api/v1/auth/me shows them.
type Me struct {
	ID          string   `json:"id"`
	Username    string   `json:"username"`
	DisplayName string   `json:"display_name"`
	Email       string   `json:"email"`
	Roles       []string `json:"roles"`
	Groups      []string `json:"groups"`
	Permissions []string `json:"permissions"`
	AuthMethod  string   `json:"auth_method"`
	SessionID   string   `json:"session_id,omitempty"`
}

// Me returns the signed-in user, raw being the answer as sent.
func (c *Client) Me(ctx context.Context) (me *Me, raw json.RawMessage, err error) {
	if err := c.call(ctx, http.MethodGet, "/api/v1/auth/me", true, nil, &raw); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, &me); err != nil {
		return nil, nil, err
	}
	return me, raw, nil
}

// Cluster is a cluster as GET /api/v1/clusters lists it.
type Cluster struct {
	Name              string `json:"name"`
	DisplayName       string `json:"display_name"`
	Role              string `json:"role"`
	Status            string `json:"status"`
	ConnectionStatus  string `json:"connection_status"`
	KubernetesVersion string `json:"kubernetes_version"`
	Provisioner       string `json:"provisioner"`
	LastError         string `json:"last_error"`
}

// list reads every page of a paged list.
func (c *Client) list(ctx context.Context, path string, q url.Values) ([]json.RawMessage, error) {
	if q == nil {
		q = url.Values{}
	}
	var all []json.RawMessage
	q.Set("page_size", "500")
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		var l struct {
			Items []json.RawMessage `json:"items"`
			Total int               `json:"total"`
		}
		if err := c.call(ctx, http.MethodGet, path+"?"+q.Encode(), true, nil, &l); err != nil {
			return nil, err
		}
		all = append(all, l.Items...)
		if len(l.Items) == 0 || len(all) >= l.Total {
			return all, nil
		}
	}
}

// decodeAll decodes each raw item into a T.
func decodeAll[T any](raw []json.RawMessage) ([]T, error) {
	out := make([]T, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Clusters lists the clusters the caller can see, with their role on
// each; raw are the items as sent.
func (c *Client) Clusters(ctx context.Context) ([]Cluster, []json.RawMessage, error) {
	raw, err := c.list(ctx, "/api/v1/clusters", nil)
	if err != nil {
		return nil, nil, err
	}
	cs, err := decodeAll[Cluster](raw)
	return cs, raw, err
}

// Cluster returns one cluster.
func (c *Client) Cluster(ctx context.Context, name string) (*Cluster, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/api/v1/clusters/"+url.PathEscape(name), true, nil, &raw); err != nil {
		return nil, nil, err
	}
	var cl Cluster
	if err := json.Unmarshal(raw, &cl); err != nil {
		return nil, nil, err
	}
	return &cl, raw, nil
}

// Quantity is CPU and memory as Kubernetes quantities ("500m", "1Gi").
type Quantity struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

// Provision is the shape of a cluster to create through a provisioner.
type Provision struct {
	Provisioner       string   `json:"provisioner,omitempty"`
	KubernetesVersion string   `json:"kubernetes_version,omitempty"`
	ControlPlane      Quantity `json:"control_plane"`
	Workers           Quantity `json:"workers"`
}

// CreateCluster asks Berth to provision a cluster; the answer is the
// create operation.
func (c *Client) CreateCluster(ctx context.Context, name string, p Provision) (*Operation, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodPost, "/api/v1/clusters", true, map[string]any{"name": name, "provision": p}, &raw); err != nil {
		return nil, nil, err
	}
	var op Operation
	if err := json.Unmarshal(raw, &op); err != nil {
		return nil, nil, err
	}
	return &op, raw, nil
}

// JoinToken is a new join token: Value and JoinCommand are shown once.
type JoinToken struct {
	ID          string    `json:"id"`
	Value       string    `json:"value"`
	ExpiresAt   time.Time `json:"expires_at"`
	JoinCommand string    `json:"join_command"`
}

// CreateJoinToken makes a join token for cluster, valid for ttl and at
// most maxUses uses (0: no limit).
func (c *Client) CreateJoinToken(ctx context.Context, cluster string, ttl time.Duration, maxUses int) (*JoinToken, json.RawMessage, error) {
	var raw json.RawMessage
	in := map[string]int{"ttl_seconds": int(ttl / time.Second), "max_uses": maxUses}
	if err := c.call(ctx, http.MethodPost, "/api/v1/clusters/"+url.PathEscape(cluster)+"/join-tokens", true, in, &raw); err != nil {
		return nil, nil, err
	}
	var jt JoinToken
	if err := json.Unmarshal(raw, &jt); err != nil {
		return nil, nil, err
	}
	return &jt, raw, nil
}

// Operation is long work on a cluster (docs/lifecycle.md).
type Operation struct {
	ID         string     `json:"id"`
	Cluster    string     `json:"cluster"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	Stage      string     `json:"stage"`
	Message    string     `json:"message"`
	Percent    int        `json:"percent"`
	Error      string     `json:"error"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Done reports whether the operation has ended.
func (o *Operation) Done() bool {
	return o.Status == "succeeded" || o.Status == "failed" || o.Status == "cancelled"
}

// OperationFilter narrows Operations; empty fields do not filter.
type OperationFilter struct {
	Cluster, Status, Type string
}

// Operations lists operations, newest first.
func (c *Client) Operations(ctx context.Context, f OperationFilter) ([]Operation, []json.RawMessage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"cluster": f.Cluster, "status": f.Status, "type": f.Type} {
		if v != "" {
			q.Set(k, v)
		}
	}
	raw, err := c.list(ctx, "/api/v1/operations", q)
	if err != nil {
		return nil, nil, err
	}
	ops, err := decodeAll[Operation](raw)
	return ops, raw, err
}

// Operation returns one operation.
func (c *Client) Operation(ctx context.Context, id string) (*Operation, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.call(ctx, http.MethodGet, "/api/v1/operations/"+url.PathEscape(id), true, nil, &raw); err != nil {
		return nil, nil, err
	}
	var op Operation
	if err := json.Unmarshal(raw, &op); err != nil {
		return nil, nil, err
	}
	return &op, raw, nil
}

// Node is a cluster's node as Berth summarises it.
type Node struct {
	// Cluster is set in the fleet's list (FleetNodes).
	Cluster        string    `json:"cluster,omitempty"`
	Name           string    `json:"name"`
	Ready          bool      `json:"ready"`
	Unschedulable  bool      `json:"unschedulable"`
	Roles          []string  `json:"roles"`
	KubeletVersion string    `json:"kubelet_version"`
	InternalIP     string    `json:"internal_ip"`
	CreatedAt      time.Time `json:"created_at"`
}

// Nodes lists a cluster's nodes.
func (c *Client) Nodes(ctx context.Context, cluster string) ([]Node, []json.RawMessage, error) {
	var l struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := c.call(ctx, http.MethodGet, "/api/v1/clusters/"+url.PathEscape(cluster)+"/nodes", true, nil, &l); err != nil {
		return nil, nil, err
	}
	ns, err := decodeAll[Node](l.Items)
	return ns, l.Items, err
}

// FailedCluster is a cluster whose nodes could not be read.
type FailedCluster struct {
	Cluster string `json:"cluster"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// FleetNodes lists the nodes of every cluster the caller reaches
// (GET /api/v1/nodes), and the clusters that could not be read.
func (c *Client) FleetNodes(ctx context.Context) ([]Node, []json.RawMessage, []FailedCluster, error) {
	var l struct {
		Items          []json.RawMessage `json:"items"`
		FailedClusters []FailedCluster   `json:"failed_clusters"`
	}
	if err := c.call(ctx, http.MethodGet, "/api/v1/nodes", true, nil, &l); err != nil {
		return nil, nil, nil, err
	}
	ns, err := decodeAll[Node](l.Items)
	return ns, l.Items, l.FailedClusters, err
}

// CA returns Berth's self-signed certificate (GET /ca.crt), or nil when
// Berth's certificate is not self-signed.
func (c *Client) CA(ctx context.Context) ([]byte, error) {
	data, err := c.send(ctx, http.MethodGet, "/ca.crt", "", nil)
	if IsNotFound(err) {
		return nil, nil
	}
	return data, err
}
