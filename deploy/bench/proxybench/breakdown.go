package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// A part is where a CPU sample's time went. Each sample goes to the first
// part whose test its stack passes, so the parts add up to the whole.
type part struct {
	name string
	in   func(frames []string) bool
}

// Names of the parts the innermost of Berth's and fasthttp's frames
// decides (see innermost).
const (
	partClient  = "fasthttp client (upstream round trip)"
	partProxy   = "Berth proxy package"
	partGateway = "Berth gateway"
)

// parts, in the order tested: time in the kernel first (a sample taken in
// a system call is the kernel's whoever made it, the runtime included),
// then the TLS library, then the innermost of fasthttp's client, Berth's
// proxy package and the gateway (so the gateway's metrics observer, called
// from the proxy, is the gateway's), then fasthttp's server and the Go
// runtime.
var parts = []part{
	{"kernel (system calls)", func(f []string) bool { return leafIs(f, kernelLeaves...) }},
	{"TLS library (crypto/tls)", func(f []string) bool { return hasPrefix(f, "crypto/tls.", "vendor/golang.org/x/crypto/") }},
	{partClient, func(f []string) bool { return innermost(f) == partClient }},
	{partProxy, func(f []string) bool { return innermost(f) == partProxy }},
	{partGateway, func(f []string) bool { return innermost(f) == partGateway }},
	{"fasthttp server (client side)", func(f []string) bool { return hasPrefix(f, "github.com/valyala/fasthttp.") }},
	{"Go runtime: background GC", func(f []string) bool {
		return hasPrefix(f, "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge")
	}},
	{"Go runtime: scheduler, other", func([]string) bool { return true }},
}

// kernelLeaves are the functions a sample's leaf frame is in while the
// thread is in a system call: the syscall package's and the runtime's own
// (futexes, sleeps, memory advice and mapping, signals).
var kernelLeaves = []string{
	"syscall.", "internal/runtime/syscall.", "internal/runtime/syscall/linux.",
	"runtime.futex", "runtime.usleep", "runtime.osyield", "runtime.madvise", "runtime.mmap", "runtime.munmap",
	"runtime.sysMmap", "runtime.sysMunmap", "runtime.tgkill", "runtime.rt_sigprocmask", "runtime.write1", "runtime.read",
	"runtime.nanosleep", "runtime.sched_getaffinity",
}

// innermost is the part of the frame nearest the leaf that is fasthttp's
// client, Berth's proxy package or Berth's gateway, or "" if none is.
func innermost(frames []string) string {
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "github.com/valyala/fasthttp.(*HostClient)"):
			return partClient
		case strings.HasPrefix(f, "github.com/berthgw/berth/proxy"):
			return partProxy
		case strings.HasPrefix(f, "github.com/berthgw/berth/gateway"):
			return partGateway
		}
	}
	return ""
}

// partOf is the index in parts of the part a sample with these frames
// (leaf first) goes to.
func partOf(frames []string) int {
	for i, pt := range parts {
		if pt.in(frames) {
			return i
		}
	}
	return len(parts) - 1
}

// leafIs reports whether the leaf frame is one of names: a name ending in
// "." stands for every function of that package, any other for itself.
func leafIs(frames []string, names ...string) bool {
	if len(frames) == 0 {
		return false
	}
	for _, n := range names {
		if frames[0] == n || (strings.HasSuffix(n, ".") && strings.HasPrefix(frames[0], n)) {
			return true
		}
	}
	return false
}

func hasPrefix(frames []string, prefixes ...string) bool {
	for _, f := range frames {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// shares reads a CPU profile and returns each part's share of its time.
func shares(file string) ([]float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	idx := len(p.SampleType) - 1 // cpu nanoseconds
	out := make([]float64, len(parts))
	var total float64
	var frames []string
	for _, s := range p.Sample {
		frames = frames[:0]
		for _, loc := range s.Location {
			// Inlined calls come first in a location's lines.
			for _, l := range loc.Line {
				frames = append(frames, l.Function.Name)
			}
		}
		v := float64(s.Value[idx])
		total += v
		out[partOf(frames)] += v
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: no samples", file)
	}
	for i := range out {
		out[i] /= total
	}
	return out, nil
}

// runBreakdown is the "breakdown" command: the CPU profiles a `run
// -profile` left in -dir (Berth's, proxy-only's, the bare fasthttp
// proxy's), each cut into parts, and with results.json each part's
// microseconds per request (its share of the target's median CPU per
// request on the static backend).
func runBreakdown(args []string) error {
	fs := flag.NewFlagSet("breakdown", flag.ContinueOnError)
	dir := fs.String("dir", "", "a results directory of run -profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return writeBreakdown(os.Stdout, *dir)
}

// breakdownTargets are the profiled targets, in the table's order.
var breakdownTargets = []string{"berth", "proxy-only", "fasthttp"}

func writeBreakdown(w io.Writer, dir string) error {
	var res results
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	var names []string
	var cols [][]float64
	var cpu []time.Duration
	for _, name := range breakdownTargets {
		file := filepath.Join(dir, name+"-cpu.pprof")
		if _, err := os.Stat(file); err != nil {
			continue
		}
		s, err := shares(file)
		if err != nil {
			return err
		}
		names, cols = append(names, name), append(cols, s)
		var c time.Duration
		if r := res.Small["static"][name]; r != nil {
			c = median(r.CPUPerOp)
		}
		cpu = append(cpu, c)
	}
	if len(names) == 0 {
		return fmt.Errorf("no CPU profiles in %s", dir)
	}
	fmt.Fprintf(w, "Where each proxy's CPU time goes under wrk (static backend): share of the profile, and µs per request at the median CPU per request of the runs.\n\n| part |")
	for _, n := range names {
		fmt.Fprintf(w, " %s |", n)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(names)))
	for i, pt := range parts {
		fmt.Fprintf(w, "| %s |", pt.name)
		for j := range names {
			fmt.Fprintf(w, " %.1f %% · %.1f µs |", 100*cols[j][i], cols[j][i]*us(cpu[j]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| **CPU per request** |")
	for j := range names {
		fmt.Fprintf(w, " **%.1f µs** |", us(cpu[j]))
	}
	fmt.Fprintln(w)
	return nil
}
