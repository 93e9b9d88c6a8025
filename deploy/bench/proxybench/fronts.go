package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/internal/freeport"
)

// writeReady writes data to path atomically, so a reader polling for the
// file never sees half of it.
func writeReady(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return nil
}

// runHTTPUtil is the "httputil" command: Go's httputil.ReverseProxy over
// HTTPS in front of one HTTPS upstream, as a baseline. The transport keeps
// up to -idle idle connections to the upstream (Go's default of 2 per host
// would make it open and close connections under load, an unfair
// comparison), HTTP/1.1 on both sides like the other proxies.
func runHTTPUtil(args []string) error {
	fs := flag.NewFlagSet("httputil", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory holding cert.pem and key.pem (served, and trusted upstream)")
	upstream := fs.String("upstream", "", "upstream URL, https://host:port")
	caFile := fs.String("ca", "", "PEM file of the upstream's CA")
	idle := fs.Int("idle", 256, "idle connections kept per upstream host")
	ready := fs.String("ready", "", "file to write the listen address to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, roots, err := parseUpstream(*upstream, *caFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(*dir, "cert.pem"), filepath.Join(*dir, "key.pem"))
	if err != nil {
		return fmt.Errorf("loading the certificate: %w", err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}},
		MaxIdleConns:        *idle,
		MaxIdleConnsPerHost: *idle,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           rp,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 10 * time.Second,
	}
	if err := writeReady(*ready, []byte(ln.Addr().String())); err != nil {
		return err
	}
	return srv.Serve(tls.NewListener(ln, srv.TLSConfig))
}

// nginxConfig is a plain TLS reverse proxy: two workers (one per core),
// upstream keep-alive, no access log, HTTP/1.1 to the upstream over TLS
// with verification of its certificate.
// setHeaders, when given, are sent upstream in place of the client's
// (nginx-as: the credential and impersonation headers Berth sends).
func nginxConfig(dir string, listen int, upstreamHostPort, caFile string, setHeaders [][2]string) string {
	var extra strings.Builder
	for _, h := range setHeaders {
		fmt.Fprintf(&extra, "      proxy_set_header %s %q;\n", h[0], h[1])
	}
	r := strings.NewReplacer(
		"@DIR@", dir,
		"@LISTEN@", fmt.Sprint(listen),
		"@UPSTREAM@", upstreamHostPort,
		"@CA@", caFile,
		"@HEADERS@\n", extra.String(),
	)
	return r.Replace(`# Written by deploy/bench/proxybench.
user root;
worker_processes auto;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path @DIR@/tmp;
  proxy_temp_path @DIR@/tmp;
  fastcgi_temp_path @DIR@/tmp;
  uwsgi_temp_path @DIR@/tmp;
  scgi_temp_path @DIR@/tmp;
  keepalive_requests 1000000;
  upstream cluster {
    server @UPSTREAM@;
    keepalive 256;
  }
  server {
    listen 127.0.0.1:@LISTEN@ ssl;
    ssl_certificate @DIR@/cert.pem;
    ssl_certificate_key @DIR@/key.pem;
    location / {
      proxy_pass https://cluster;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate @CA@;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
      proxy_buffering on;
@HEADERS@
    }
  }
}
`)
}

// freePort returns a loopback port that was free a moment ago, below the
// ephemeral range (see package freeport).
func freePort() (int, error) {
	ports, err := freeport.Pick(1)
	if err != nil {
		return 0, fmt.Errorf("picking a port: %w", err)
	}
	return ports[0], nil
}

// runFastHTTP is the "fasthttp" command: the smallest reverse proxy
// fasthttp makes, the anchor the proxy issue measured ("a bare fasthttp
// proxy"). It forwards each request as received, the client's credential
// included, to one HTTPS upstream over a fasthttp.HostClient, reading the
// whole answer before writing it back: no header filtering, impersonation,
// streaming, metrics or error mapping. What Berth's proxy package does on
// top of this is what proxy-only − fasthttp costs.
func runFastHTTP(args []string) error {
	fs := flag.NewFlagSet("fasthttp", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory holding cert.pem and key.pem")
	upstream := fs.String("upstream", "", "upstream URL, https://host:port")
	caFile := fs.String("ca", "", "PEM file of the upstream's CA")
	ready := fs.String("ready", "", "file to write the listen address to")
	cpuprofile := fs.String("cpuprofile", "", "file to write a CPU profile to, taken between SIGUSR1 and SIGUSR2")
	if err := fs.Parse(args); err != nil {
		return err
	}
	profileOnSignals(*cpuprofile)
	u, roots, err := parseUpstream(*upstream, *caFile)
	if err != nil {
		return err
	}
	client := &fasthttp.HostClient{Addr: u.Host, IsTLS: true, TLSConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		MaxConns: 512, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := client.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error("upstream: "+err.Error(), fasthttp.StatusBadGateway)
			}
		},
		ReadTimeout:           60 * time.Second,
		NoDefaultServerHeader: true,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	if err := writeReady(*ready, []byte(ln.Addr().String())); err != nil {
		return err
	}
	return srv.ServeTLS(ln, filepath.Join(*dir, "cert.pem"), filepath.Join(*dir, "key.pem"))
}

// parseUpstream reads the -upstream URL and the PEM file of its CA, as the
// httputil and fasthttp baselines take them.
func parseUpstream(upstream, caFile string) (*url.URL, *x509.CertPool, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream URL: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the upstream CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	return u, roots, nil
}
