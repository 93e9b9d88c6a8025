package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HTTPClient returns a client for health checks: it trusts the PEM
// certificates in caPEM, presents certs, gives up on a call after 5
// seconds and keeps no connection open, as a poll's calls are seconds
// apart.
func HTTPClient(caPEM []byte, certs ...tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: certs, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

// EtcdHealthy returns nil when etcd at url (its client URL) answers
// /health with {"health":"true"}.
func EtcdHealthy(ctx context.Context, client *http.Client, url string) error {
	resp, err := get(ctx, client, url+"/health", "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var health struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&health); err != nil {
		return fmt.Errorf("decode /health: %w", err)
	}
	if resp.StatusCode != http.StatusOK || health.Health != "true" {
		return fmt.Errorf("/health: %s, health=%q", resp.Status, health.Health)
	}
	return nil
}

// APIServerReady returns nil when the API server at server answers
// /readyz with 200. The request carries token as a bearer token when it is
// set; otherwise the client authenticates with its certificate.
func APIServerReady(ctx context.Context, client *http.Client, server, token string) error {
	resp, err := get(ctx, client, server+"/readyz", token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body lists the checks that fail; the last lines are enough.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return fmt.Errorf("/readyz: %s: %s", resp.Status, lastLines(string(body), 5))
	}
	return nil
}

func get(ctx context.Context, client *http.Client, url, token string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("build the request for %s: %w", url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return client.Do(req)
}

// Poll calls check every 250 ms, giving each call at most 10 seconds,
// until it returns nil or ctx ends; the error then carries check's last
// error. When check returns an error made by Permanent, Poll stops at once
// and returns the error it wraps: a process that died, say, will not
// become healthy by waiting.
func Poll(ctx context.Context, check func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		err := check(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Permanent wraps err so that Poll returns it at once instead of trying
// again.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
