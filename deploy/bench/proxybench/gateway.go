package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"

	"github.com/berthgw/berth/gateway"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/internal/logbuffer"
)

// gatewayReady is what the "gateway" command reports once listening.
type gatewayReady struct {
	HTTP, HTTPS, Debug string
	CertFile           string
}

// memStats is the answer of the gateway's /bench/mem: the Go runtime's view
// of its memory after a forced GC.
type memStats struct {
	HeapLive   uint64 `json:"heap_live"`    // /gc/heap/live:bytes
	HeapObjs   uint64 `json:"heap_objects"` // /memory/classes/heap/objects:bytes
	Stacks     uint64 `json:"stacks"`       // /memory/classes/heap/stacks:bytes
	Total      uint64 `json:"total"`        // /memory/classes/total:bytes (mapped by the runtime)
	Goroutines int    `json:"goroutines"`
}

var memMetricNames = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
}

func readMem() memStats {
	s := make([]metrics.Sample, len(memMetricNames))
	for i, n := range memMetricNames {
		s[i].Name = n
	}
	metrics.Read(s)
	return memStats{HeapLive: s[0].Value.Uint64(), HeapObjs: s[1].Value.Uint64(), Stacks: s[2].Value.Uint64(),
		Total: s[3].Value.Uint64(), Goroutines: runtime.NumGoroutine()}
}

// peakSampler records the largest heap (objects, live or not yet swept)
// seen between start and stop, sampling every 100 µs.
type peakSampler struct {
	mu   sync.Mutex
	stop chan struct{}
	done chan uint64
	base uint64
}

func (p *peakSampler) start() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		<-p.done
	}
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	p.base = s[0].Value.Uint64()
	p.stop, p.done = make(chan struct{}), make(chan uint64, 1)
	go func(stop <-chan struct{}, done chan<- uint64) {
		var peak uint64
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				metrics.Read(s)
				done <- max(peak, s[0].Value.Uint64())
				return
			case <-t.C:
			}
		}
	}(p.stop, p.done)
	return p.base
}

// finish returns the peak heap growth above the heap at start.
func (p *peakSampler) finish() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		return 0, fmt.Errorf("the sampler is not running")
	}
	close(p.stop)
	peak := <-p.done
	p.stop = nil
	if peak < p.base {
		return 0, nil
	}
	return peak - p.base, nil
}

// runGateway is the "gateway" command: Berth's gateway exactly as `berth
// serve` runs it (configuration from the embedded file plus BERTH_*
// variables), plus a loopback-only debug listener for the benchmark:
// net/http/pprof, /bench/mem (memory after a forced GC) and
// /bench/peak/start and /bench/peak/stop (peak heap during a request).
func runGateway(args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	ready := fs.String("ready", "", "file to write the addresses to (JSON)")
	certFile := fs.String("cert-out", "", "file to write the gateway's TLS certificate to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load("", os.LookupEnv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	syscall.Umask(0o077)
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	// As berth serve builds it: JSON lines, batched as log.flush_interval says.
	var accessLog io.Writer
	h, flush := logbuffer.NewHandler(os.Stderr, time.Duration(cfg.Log.FlushInterval), func(w io.Writer) slog.Handler {
		accessLog = w
		return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	})
	defer flush()
	log := slog.New(h)
	g, err := gateway.New(gateway.Options{Config: cfg, Logger: log, AccessLog: accessLog, Stdout: os.Stdout})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := g.Listen(); err != nil {
		_ = g.Close()
		return fmt.Errorf("gateway listen: %w", err)
	}

	var peak peakSampler
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/bench/mem", func(w http.ResponseWriter, _ *http.Request) {
		// A GC, and the freed pages returned to the OS, so that RSS too
		// shows what is live (and not what an earlier case left behind).
		debug.FreeOSMemory()
		_ = json.NewEncoder(w).Encode(readMem())
	})
	mux.HandleFunc("/bench/peak/start", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, peak.start())
	})
	mux.HandleFunc("/bench/peak/stop", func(w http.ResponseWriter, _ *http.Request) {
		v, err := peak.finish()
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprint(w, v)
	})
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = g.Close()
		return fmt.Errorf("debug listener: %w", err)
	}
	dsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = dsrv.Serve(dln) }()
	defer dsrv.Close()

	if err := os.WriteFile(*certFile, g.CertificatePEM(), 0o600); err != nil {
		_ = g.Close()
		return fmt.Errorf("writing the certificate: %w", err)
	}
	info, _ := json.Marshal(gatewayReady{HTTP: g.HTTPAddr(), HTTPS: g.HTTPSAddr(), Debug: dln.Addr().String(), CertFile: filepath.Clean(*certFile)})
	if err := writeReady(*ready, info); err != nil {
		_ = g.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return g.Serve(ctx)
}
