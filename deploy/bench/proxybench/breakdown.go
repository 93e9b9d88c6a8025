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

// parts, in the order tested: time in the kernel first (a sample taken in
// a system call is the kernel's whoever asked), then the TLS library, then
// the innermost of fasthttp's client, Berth's proxy package and the
// gateway, then fasthttp's server and the Go runtime.
var parts = []part{
	{"kernel (system calls)", func(f []string) bool {
		return leafIs(f, "syscall.", "internal/runtime/syscall.", "internal/runtime/syscall/linux.")
	}},
	{"TLS library (crypto/…)", func(f []string) bool { return hasPrefix(f, "crypto/") }},
	{"fasthttp client (upstream round trip)", func(f []string) bool { return hasPrefix(f, "github.com/valyala/fasthttp.(*HostClient)") }},
	{"Berth proxy package", func(f []string) bool { return hasPrefix(f, "github.com/berthgw/berth/proxy") }},
	{"Berth gateway", func(f []string) bool { return hasPrefix(f, "github.com/berthgw/berth/gateway") }},
	{"fasthttp server (client side)", func(f []string) bool { return hasPrefix(f, "github.com/valyala/fasthttp.") }},
	{"Go runtime: garbage collector", func(f []string) bool {
		return hasPrefix(f, "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcAssistAlloc")
	}},
	{"Go runtime: scheduler, other", func([]string) bool { return true }},
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

func leafIs(frames []string, prefixes ...string) bool {
	if len(frames) == 0 {
		return false
	}
	for _, p := range prefixes {
		if strings.HasPrefix(frames[0], p) {
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
