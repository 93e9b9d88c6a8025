package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/proxy"
)

// runBare is the "bare" command: Berth's proxy package alone behind a
// fasthttp TLS server, as the gateway mounts it but with none of the
// gateway around it (no authentication, membership, rate limit, access
// log, metrics or audit) and a fixed identity. Comparing it with the full
// gateway separates the proxy's cost from the gateway's.
func runBare(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory holding cert.pem and key.pem")
	name := fs.String("cluster", "", "cluster name")
	server := fs.String("server", "", "cluster URL, https://host:port")
	caFile := fs.String("ca", "", "PEM file of the cluster's CA")
	token := fs.String("token", "", "bearer token for the cluster")
	ready := fs.String("ready", "", "file to write the listen address to")
	cpuprofile := fs.String("cpuprofile", "", "file to write a CPU profile to, taken between SIGUSR1 and SIGUSR2")
	if err := fs.Parse(args); err != nil {
		return err
	}
	profileOnSignals(*cpuprofile)
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return fmt.Errorf("reading the CA: %w", err)
	}
	pool := proxy.NewPool(proxy.PoolOptions{})
	if err := pool.Set(proxy.Cluster{Name: *name, Server: *server, CAData: caPEM, Token: *token}); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	p := proxy.New(proxy.Options{Pool: pool})
	// What the gateway asserts for the benchmark user, a view member.
	id := proxy.Identity{User: "berth:" + benchUser, Groups: []string{"berth:role:view"},
		Extra: map[string][]string{"berth.dev/client-ip": {"127.0.0.1"}, "berth.dev/auth-method": {"jwt"}}}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			t, err := proxy.ParseTarget(ctx.RequestURI())
			if err != nil {
				proxy.WriteStatus(ctx, fasthttp.StatusBadRequest, err.Error())
				return
			}
			p.Serve(ctx, t, id)
		},
		ReadTimeout:                  60 * time.Second,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
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
