// Command proxybench measures Berth's Kubernetes proxy from outside its
// process: throughput and latency of a small GET through Berth (JWT
// authentication, membership check and rate limiting on) against the same
// backend reached directly, through nginx and through Go's
// httputil.ReverseProxy; sort and page of large pod lists end to end; and
// the memory and latency cost of many concurrent watches.
//
// Everything runs on 127.0.0.1: a static HTTPS backend, a real etcd and
// kube-apiserver (deploy/e2e/kubeenv), Berth's gateway, nginx and the
// httputil proxy are child processes, each in its own process group, all
// stopped on exit. wrk drives maximum throughput, vegeta a fixed rate.
//
// Usage (see deploy/bench/README.md; `make bench-proxy` installs the tools
// and runs it):
//
//	go run ./deploy/bench/proxybench run [-runs 3] [-duration 10s] [-out DIR]
//
// idle-rss measures the memory of an idle `berth serve` (a built binary,
// started as an operator would on the default configuration):
//
//	go run ./deploy/bench/proxybench idle-rss -berth /tmp/berth [-runs 3] [-wait 10s]
//
// The subcommands backend, bare, fasthttp, httputil and gateway are the children it
// starts; they are not meant to be run by hand.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: proxybench run [flags] | proxybench idle-rss -berth PATH [flags] | proxybench breakdown -dir DIR   (see deploy/bench/README.md)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err = run(ctx, os.Args[2:])
		stop()
		stopAll()
	case "idle-rss":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err = runIdleRSS(ctx, os.Args[2:])
		stop()
		stopAll()
	case "breakdown":
		err = runBreakdown(os.Args[2:])
	case "backend":
		err = runBackend(os.Args[2:])
	case "bare":
		err = runBare(os.Args[2:])
	case "httputil":
		err = runHTTPUtil(os.Args[2:])
	case "fasthttp":
		err = runFastHTTP(os.Args[2:])
	case "gateway":
		err = runGateway(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}
