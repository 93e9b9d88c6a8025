package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

// The baselines (the bare fasthttp proxy, proxy-only) have no debug
// listener like the gateway's: they are profiled on signals instead, so
// that their profiles are taken under the same wrk load as Berth's and
// show which part of the time is fasthttp's, the TLS library's or the
// kernel's in all three.
const (
	startProfileSignal = syscall.SIGUSR1
	stopProfileSignal  = syscall.SIGUSR2
)

// profileOnSignals makes the process write a CPU profile to file between a
// startProfileSignal and a stopProfileSignal. The profile appears under its
// name only once it is complete.
func profileOnSignals(file string) {
	if file == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, startProfileSignal, stopProfileSignal)
	go func() {
		var f *os.File
		for s := range sig {
			switch {
			case s == startProfileSignal && f == nil:
				var err error
				if f, err = os.Create(file + ".part"); err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
					f.Close()
					f = nil
				}
			case s == stopProfileSignal && f != nil:
				pprof.StopCPUProfile()
				err := f.Close()
				f = nil
				if err == nil {
					err = os.Rename(file+".part", file)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "profile:", err)
				}
			}
		}
	}()
}

// profileChild takes a CPU profile of the baseline t (started with
// -cpuprofile file) while wrk drives the small GET through it, as
// profileBerth does for the gateway, and writes its top functions next to it.
func profileChild(ctx context.Context, o options, tl tools, t target, file string) error {
	errc := make(chan error, 1)
	go func() {
		_, err := runWrk(ctx, tl, t, o.threads, o.conns, 14*time.Second)
		errc <- err
	}()
	time.Sleep(2 * time.Second)
	// A profile left by an earlier run in the same -out must not pass for
	// this one.
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		return err
	}
	serr := syscall.Kill(t.PGID, startProfileSignal)
	if serr == nil {
		time.Sleep(10 * time.Second)
		serr = syscall.Kill(t.PGID, stopProfileSignal)
	}
	if werr := <-errc; werr != nil {
		return werr
	}
	if serr != nil {
		return fmt.Errorf("signalling %s: %w", t.Name, serr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(file); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s wrote no profile to %s", t.Name, file)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return writeTops(ctx, o.out, t.Name, file)
}

// writeTops writes pprof's flat and cumulative top functions of the
// profile file as name-cpu-top.txt and name-cpu-cum.txt in dir.
func writeTops(ctx context.Context, dir, name, file string) error {
	for _, cum := range []bool{false, true} {
		args := []string{"tool", "pprof", "-top", "-nodecount=45"}
		top := name + "-cpu-top.txt"
		if cum {
			args = append(args, "-cum")
			top = name + "-cpu-cum.txt"
		}
		out, err := runGo(ctx, append(args, file)...)
		if err != nil {
			return fmt.Errorf("go tool pprof: %w\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(dir, top), out, 0o644); err != nil {
			return err
		}
	}
	logf("CPU profile of %s in %s", name, file)
	return nil
}
