package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// fieldManager names this plugin in the managedFields of what it applies.
const fieldManager = "berth-provisioner-local"

// kubeClient makes plain HTTPS calls to one cluster's API server as the
// admin identity. A handful of calls do not justify client-go's weight.
type kubeClient struct {
	server string
	http   *http.Client
}

func newKubeClient(server string, caPEM []byte, cert tls.Certificate) *kubeClient {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &kubeClient{
		server: server,
		http: &http.Client{
			Timeout: 15 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
				// A fresh connection per cluster operation is cheap on
				// loopback; idle ones would pile up across clusters.
				DisableKeepAlives: true,
			},
		},
	}
}

// apiError is a non-2xx answer.
type apiError struct {
	method, path string
	status       int
	body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

func (k *kubeClient) do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, k.server+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		// Error bodies are Status objects; none of the calls here can echo
		// a secret back, but keep them short for the logs.
		msg := strings.TrimSpace(string(data))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, &apiError{method: method, path: path, status: resp.StatusCode, body: msg}
	}
	return data, nil
}

// apply creates or updates an object with server-side apply, so applying
// twice (a create resumed after a plugin restart) is harmless and a newer
// plugin's rules replace an older one's.
func (k *kubeClient) apply(ctx context.Context, collection, name string, obj any) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	path := collection + "/" + url.PathEscape(name) + "?fieldManager=" + fieldManager + "&force=true"
	// JSON is YAML, which is what the apply content type asks for.
	_, err = k.do(ctx, http.MethodPatch, path, "application/apply-patch+yaml", body)
	return err
}

// bootstrapToken creates a bootstrap token Secret (kubeadm's format) that
// authenticates as system:bootstrap:<id> in the groups system:bootstrappers
// and system:bootstrappers:kubeadm:default-node-token until expires. The
// token is a secret: it is returned, never logged.
func (k *kubeClient) bootstrapToken(ctx context.Context, ttl time.Duration, description string) (token string, expires time.Time, err error) {
	expires = time.Now().Add(ttl).UTC().Truncate(time.Second)
	for range 3 {
		id, secret := randomString(6), randomString(16)
		obj := map[string]any{
			"apiVersion": "v1",
			"kind":       "Secret",
			"metadata":   map[string]any{"name": "bootstrap-token-" + id, "namespace": "kube-system"},
			"type":       "bootstrap.kubernetes.io/token",
			"stringData": map[string]string{
				"description":                    description,
				"token-id":                       id,
				"token-secret":                   secret,
				"expiration":                     expires.Format(time.RFC3339),
				"usage-bootstrap-authentication": "true",
				"usage-bootstrap-signing":        "true",
				"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token",
			},
		}
		body, err := json.Marshal(obj)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("encode the token secret: %w", err)
		}
		_, err = k.do(ctx, http.MethodPost, "/api/v1/namespaces/kube-system/secrets", "application/json", body)
		if ae, ok := err.(*apiError); ok && ae.status == http.StatusConflict {
			continue // an id taken already: 36^6 makes this rare, so draw again
		}
		if err != nil {
			return "", time.Time{}, fmt.Errorf("create the bootstrap token secret: %w", err)
		}
		return id + "." + secret, expires, nil
	}
	return "", time.Time{}, fmt.Errorf("create the bootstrap token secret: three token ids in a row were taken")
}

// randomString returns n characters of [a-z0-9], the alphabet of
// bootstrap tokens.
func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, n)
	// 252 is the largest multiple of 36 below 256: rejecting bytes above
	// it keeps every character equally likely.
	buf := make([]byte, 2*n)
	for i := 0; i < n; {
		_, _ = rand.Read(buf)
		for _, b := range buf {
			if b < 252 && i < n {
				out[i] = alphabet[b%36]
				i++
			}
		}
	}
	return string(out)
}
