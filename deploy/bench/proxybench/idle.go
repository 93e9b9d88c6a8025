package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthgw/berth/internal/freeport"
)

// idleWait is how long a gateway sits with no requests before its idle
// memory is read, by idle-rss (its default) and by run.
const idleWait = 10 * time.Second

// procMem is what /proc/<pid>/status says of a process's memory, in bytes.
type procMem struct {
	RSS     int64 `json:"rss"`      // VmRSS
	Anon    int64 `json:"rss_anon"` // RssAnon: heap, stacks, the runtime's own
	File    int64 `json:"rss_file"` // RssFile: pages of the executable and libraries
	Threads int   `json:"threads"`
}

// readProcMem reads pid's /proc/<pid>/status.
func readProcMem(pid int) (procMem, error) {
	var m procMem
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("reading memory: %w", err)
	}
	defer f.Close()
	sizes := map[string]*int64{"VmRSS": &m.RSS, "RssAnon": &m.Anon, "RssFile": &m.File}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "VmRSS:\t   42000 kB", "Threads:\t7"
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if name == "Threads" {
			m.Threads, _ = strconv.Atoi(v)
			continue
		}
		p, ok := sizes[name]
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
		if err != nil {
			return m, fmt.Errorf("parsing %s %q: %w", name, v, err)
		}
		*p = kb << 10
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading memory: %w", err)
	}
	if m.RSS == 0 {
		return m, errors.New("reading memory: no VmRSS line")
	}
	return m, nil
}

// runIdleRSS is the "idle-rss" command: the memory of `berth serve` that
// nobody calls. Each run starts the given binary as an operator would the
// first time (the embedded default configuration, a new data directory
// on Badger, an admin password to create the admin with, loopback ports,
// nothing else in its environment but PATH and HOME), waits for /readyz
// to answer 200, leaves it idle for -wait, reads /proc/<pid>/status and
// stops it with SIGTERM.
func runIdleRSS(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle-rss", flag.ContinueOnError)
	bin := fs.String("berth", "", "the berth executable to measure (required), e.g. built with: go build -o /tmp/berth ./cmd/berth")
	runs := fs.Int("runs", 3, "gateways started one after the other, each on new data")
	wait := fs.Duration("wait", idleWait, "how long each sits idle after /readyz answers 200")
	restart := fs.Bool("restart", false, "also measure a second start on each run's data (the admin exists: no password hash)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || fs.NArg() > 0 {
		return errors.New("usage: proxybench idle-rss -berth PATH [-runs 3] [-wait 10s] [-restart]")
	}
	exe, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	st, err := os.Stat(exe)
	if err != nil {
		return fmt.Errorf("the berth executable: %w", err)
	}
	fmt.Printf("berth serve idle %s after /readyz, default configuration, Badger, new data; %s (%.1f MiB)\n\n", *wait, exe, mib(st.Size()))
	fmt.Println("| run | start | VmRSS MiB | anonymous MiB | file-backed MiB | threads |")
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	var rss []int64
	for i := 1; i <= *runs; i++ {
		dir, err := os.MkdirTemp("", "berth-idle-")
		if err != nil {
			return err
		}
		starts := []string{"first"}
		if *restart {
			starts = append(starts, "again")
		}
		for _, start := range starts {
			m, err := idleOnce(ctx, exe, dir, *wait)
			if err != nil {
				_ = os.RemoveAll(dir)
				return fmt.Errorf("run %d (%s start): %w", i, start, err)
			}
			fmt.Printf("| %d | %s | %.1f | %.1f | %.1f | %d |\n", i, start, mib(m.RSS), mib(m.Anon), mib(m.File), m.Threads)
			if start == "first" {
				rss = append(rss, m.RSS)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	slices.Sort(rss)
	fmt.Printf("\nVmRSS of the first starts: median %.1f MiB, min %.1f, max %.1f.\n", mib(rss[len(rss)/2]), mib(rss[0]), mib(rss[len(rss)-1]))
	return nil
}

// idleOnce starts exe serve on dir's data, waits until it is ready and
// then for wait, and returns its memory.
func idleOnce(ctx context.Context, exe, dir string, wait time.Duration) (procMem, error) {
	ports, err := freeport.Pick(2)
	if err != nil {
		return procMem{}, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	cmd := exec.Command(exe, "serve")
	// Only what an operator's shell would surely have: no BERTH_* of the
	// caller's may change what is measured.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"BERTH_DATA_DIR=" + filepath.Join(dir, "data"),
		"BERTH_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(ports[0]),
		"BERTH_HTTPS_ADDR=127.0.0.1:" + strconv.Itoa(ports[1]),
		"BERTH_ADMIN_PASSWORD=" + adminPassword,
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "berth.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return procMem{}, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return procMem{}, fmt.Errorf("starting berth: %w", err)
	}
	c := &child{name: "berth", cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	childrenMu.Lock()
	children = append(children, c)
	childrenMu.Unlock()
	defer c.stop(10 * time.Second)

	if err := waitReady(ctx, c, base+"/readyz", time.Minute); err != nil {
		return procMem{}, fmt.Errorf("%w (see %s)", err, logFile.Name())
	}
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return procMem{}, ctx.Err()
	}
	if err := c.exited(); err != nil {
		return procMem{}, err
	}
	return readProcMem(c.pid())
}

// waitReady polls url until it answers 200, failing early if c exits.
func waitReady(ctx context.Context, c *child, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := c.exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, timeout)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
