package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// options of the run command.
type options struct {
	out, repo       string
	runs            int
	duration        time.Duration
	rate, kubeRate  int
	threads, conns  int
	vegetaConns     int
	watches         int
	listRuns        int
	skipKube        bool
	skipList        bool
	skipWatch       bool
	skipSmall       bool
	profile         bool
	httputilIdle    int
	wrkPath, vegeta string
	// etcd adds a second Berth keeping its store on etcd (etcdMembers
	// members, started for it); targets, when set, limits the small-GET
	// targets measured.
	etcd        bool
	etcdMembers int
	targets     string
	berthExe    string
}

// results is everything measured, written to results.json.
type results struct {
	Started    time.Time `json:"started"`
	Host       string    `json:"host"`
	GoVersion  string    `json:"go_version"`
	CPUs       int       `json:"cpus"`
	LoadBefore float64   `json:"load_before"`
	LoadAfter  float64   `json:"load_after"`
	// BerthIdle is the memory of `berth serve` itself (the -berth
	// executable), idle on new data, measured first.
	BerthIdle *procMem `json:"berth_serve_idle,omitempty"`
	Options   string   `json:"options"`
	// Small GET, per backend ("static", "kube"), per target.
	Small map[string]map[string]*smallResult `json:"small,omitempty"`
	Lists []*listResult                      `json:"lists,omitempty"`
	Watch *watchResult                       `json:"watch,omitempty"`
	// EtcdIdle is what the Berth on etcd asked of etcd during
	// EtcdIdleSeconds with no requests (with -etcd).
	EtcdIdle        etcdCounts `json:"etcd_idle,omitempty"`
	EtcdIdleSeconds float64    `json:"etcd_idle_seconds,omitempty"`
	// Idle is the gateway's memory before its first request, idleWait
	// after it became ready.
	Idle *idleResult `json:"idle,omitempty"`
}

// idleResult is the memory of the benchmark's gateway (proxybench gateway:
// Berth in this program's process) before any request: /proc's figures
// first, then the runtime's after a forced GC.
type idleResult struct {
	Proc    procMem  `json:"proc"`
	Runtime memStats `json:"runtime_after_gc"`
}

type smallResult struct {
	RPS      []float64       `json:"rps"`
	CPUPerOp []time.Duration `json:"cpu_per_request"`
	P50      []time.Duration `json:"p50"`
	P99      []time.Duration `json:"p99"`
	Max      []time.Duration `json:"max"`
	Achieved []float64       `json:"achieved_rate"`
	Loads    []float64       `json:"load_averages"`
	// Requests and Seconds of each wrk run, and for a target on etcd what
	// etcd served during it.
	Requests []int        `json:"requests"`
	Seconds  []float64    `json:"seconds"`
	Etcd     []etcdCounts `json:"etcd,omitempty"`
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "", "directory for results, logs and profiles (default: a new temporary directory)")
	fs.StringVar(&o.repo, "repo", ".", "the repository's root (for deploy/rbac/berth-rbac.yaml)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each throughput and latency case (the median is reported)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each wrk and vegeta run")
	fs.IntVar(&o.rate, "rate", 3000, "fixed request rate against the static backend (vegeta)")
	fs.IntVar(&o.kubeRate, "kube-rate", 500, "fixed request rate against kube-apiserver (vegeta)")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.conns, "conns", 64, "wrk connections")
	fs.IntVar(&o.vegetaConns, "vegeta-conns", 64, "vegeta workers and connections")
	fs.IntVar(&o.watches, "watches", 1000, "concurrent watches")
	fs.IntVar(&o.listRuns, "list-runs", 5, "requests per list case")
	fs.BoolVar(&o.skipKube, "skip-kube", false, "do not start kube-apiserver (no kube cases, no watches)")
	fs.BoolVar(&o.skipList, "skip-list", false, "skip the list sort-and-page cases")
	fs.BoolVar(&o.skipWatch, "skip-watch", false, "skip the watch cases")
	fs.BoolVar(&o.skipSmall, "skip-small", false, "skip the small-GET throughput and latency cases")
	fs.BoolVar(&o.profile, "profile", false, "also take a 10 s CPU profile of the gateway under wrk load")
	fs.IntVar(&o.httputilIdle, "httputil-idle", 256, "idle upstream connections per host of the httputil proxy")
	fs.StringVar(&o.wrkPath, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.vegeta, "vegeta", "vegeta", "vegeta binary")
	fs.BoolVar(&o.etcd, "etcd", false, "also measure a second Berth with its store on etcd (berth-etcd), and count etcd's requests per proxied request")
	fs.IntVar(&o.etcdMembers, "etcd-members", 1, "members of the etcd started for berth-etcd")
	fs.StringVar(&o.berthExe, "berth", "", "a berth executable: its idle memory (as idle-rss measures it) is measured first and reported with the aims")
	fs.StringVar(&o.targets, "targets", "", "comma-separated small-GET targets to measure, in this order after direct (default: all), e.g. berth,berth-etcd")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.runs < 1 || o.runs > 20 || o.watches < 1 || o.watches > 5000 || o.listRuns < 1 || o.listRuns > 50 || o.etcdMembers < 1 || o.etcdMembers > 5 {
		return errors.New("runs must be 1-20, watches 1-5000, list-runs 1-50, etcd-members 1-5")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()

	var tl tools
	var err error
	if tl.Wrk, err = exec.LookPath(o.wrkPath); err != nil && !o.skipSmall {
		return fmt.Errorf("wrk not found (apt-get install wrk): %w", err)
	}
	if tl.Vegeta, err = exec.LookPath(o.vegeta); err != nil && !o.skipSmall {
		return fmt.Errorf("vegeta not found (go install github.com/tsenart/vegeta/v12@v12.13.0): %w", err)
	}
	nginx, nginxErr := exec.LookPath("nginx")
	if nginxErr != nil && !o.skipSmall {
		return fmt.Errorf("nginx not found (apt-get install nginx-light): %w", nginxErr)
	}
	if o.out == "" {
		if o.out, err = os.MkdirTemp("", "berth-bench-"); err != nil {
			return fmt.Errorf("output dir: %w", err)
		}
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	work, err := os.MkdirTemp("", "berth-bench-work-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)
	logf("output in %s, logs of the children in %s (removed at the end)", o.out, work)

	host, _ := os.Hostname()
	res := &results{Started: time.Now().UTC(), Host: host, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadBefore: loadAvg(),
		Options: strings.Join(args, " "), Small: map[string]map[string]*smallResult{}}

	if o.berthExe != "" {
		dir, err := os.MkdirTemp(work, "berth-idle-")
		if err != nil {
			return err
		}
		logf("berth serve (%s) idle for %s after ready", o.berthExe, idleWait)
		m, err := idleOnce(ctx, o.berthExe, dir, idleWait)
		if err != nil {
			return fmt.Errorf("idle berth serve: %w", err)
		}
		res.BerthIdle = &m
		logf("berth serve idle: RSS %.1f MiB (anonymous %.1f, file-backed %.1f)", mib(m.RSS), mib(m.Anon), mib(m.File))
	}

	// The static backend, with its own self-signed certificate.
	certFile, _, err := writeCert(work)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating this program: %w", err)
	}
	backendReady := filepath.Join(work, "backend.ready")
	backend, err := startChild("backend", filepath.Join(work, "backend.log"), nil, self, "backend", "-dir", work, "-ready", backendReady)
	if err != nil {
		return err
	}
	data, err := waitFile(backend, backendReady, 30*time.Second)
	if err != nil {
		return err
	}
	backendAddr := string(data)
	clusters := []clusterSpec{{Name: "static", Server: "https://" + backendAddr, Token: "static-backend-token", CA: caPEM}}

	var kube *kubeEnv
	if !o.skipKube {
		logf("starting etcd and kube-apiserver")
		env, err := startKube(ctx, work, o.repo)
		if err != nil {
			return err
		}
		defer env.Stop()
		kube = &kubeEnv{Env: env}
		clusters = append(clusters, clusterSpec{Name: "kube", Server: env.Server, Token: env.UserToken, CA: env.CAData})
	}

	logf("starting Berth")
	b, err := startBerth(work, "berth", nil)
	if err != nil {
		return err
	}
	logf("leaving Berth idle for %s before its first request", idleWait)
	if res.Idle, err = b.idle(ctx); err != nil {
		return err
	}
	logf("idle: RSS %.1f MiB (anonymous %.1f, file-backed %.1f); after GC heap live %.1f MiB",
		mib(res.Idle.Proc.RSS), mib(res.Idle.Proc.Anon), mib(res.Idle.Proc.File), mib(int64(res.Idle.Runtime.HeapLive)))
	if err := b.setUp(ctx, clusters); err != nil {
		return err
	}
	var be *berth
	var etcdEndpoints []string
	if o.etcd {
		c, err := startStoreEtcd(ctx, work, o.etcdMembers)
		if err != nil {
			return err
		}
		defer c.Stop()
		etcdEndpoints = c.Endpoints()
		logf("starting a second Berth on etcd (%s)", strings.Join(etcdEndpoints, ","))
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		be, err = startBerth(work, "berth-etcd", []string{
			"BERTH_STORE_BACKEND=etcd",
			"BERTH_STORE_ETCD_ENDPOINTS=" + strings.Join(etcdEndpoints, ","),
			// Required on etcd: every replica must seal with the same key.
			"BERTH_SECRET_KEY=" + hex.EncodeToString(key),
		})
		if err != nil {
			return err
		}
		if err := be.setUp(ctx, clusters); err != nil {
			return err
		}
		// What Berth asks of etcd when nobody calls it: the baseline the
		// per-request counts are read against.
		logf("counting what berth-etcd asks of etcd while idle for %s", o.duration)
		before, err := readEtcdCounts(ctx, etcdEndpoints)
		if err != nil {
			return err
		}
		started := time.Now()
		select {
		case <-time.After(o.duration):
		case <-ctx.Done():
			return ctx.Err()
		}
		after, err := readEtcdCounts(ctx, etcdEndpoints)
		if err != nil {
			return err
		}
		res.EtcdIdle, res.EtcdIdleSeconds = after.minus(before), time.Since(started).Seconds()
		logf("berth-etcd idle for %.1f s: %s", res.EtcdIdleSeconds, res.EtcdIdle)
	}

	if !o.skipSmall {
		if err := smallCases(ctx, o, tl, nginx, work, self, res, b, be, etcdEndpoints, backend, backendAddr, certFile, kube); err != nil {
			return err
		}
	}
	if o.profile {
		if err := profileBerth(ctx, o, tl, b, "berth"); err != nil {
			return err
		}
		if be != nil {
			if err := profileBerth(ctx, o, tl, be, "berth-etcd"); err != nil {
				return err
			}
		}
	}
	if kube != nil && !o.skipWatch {
		wr, err := watchCases(ctx, o, b, kube)
		if err != nil {
			return err
		}
		res.Watch = wr
	}
	if !o.skipList {
		lr, err := listCases(ctx, o, b, backendAddr, caPEM)
		if err != nil {
			return err
		}
		res.Lists = lr
	}
	res.LoadAfter = loadAvg()

	js, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	report := markdown(res, o)
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(report), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	fmt.Println(report)
	if o.profile && !o.skipSmall {
		var b strings.Builder
		if err := writeBreakdown(&b, o.out); err != nil {
			return fmt.Errorf("breaking the profiles down: %w", err)
		}
		if err := os.WriteFile(filepath.Join(o.out, "breakdown.md"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("writing the breakdown: %w", err)
		}
		fmt.Println(b.String())
	}
	logf("results in %s", o.out)
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s proxybench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// smallCases starts nginx and the httputil proxy in front of each backend
// and measures the small GET through every target, round-robin so that a
// noisy moment on the shared machine hits all targets alike.
//
// be, when not nil, is a second Berth with its store on etcd (reached at
// etcdEndpoints): the target "berth-etcd", whose runs also count what etcd
// served meanwhile.
func smallCases(ctx context.Context, o options, tl tools, nginx, work, self string, res *results, b, be *berth, etcdEndpoints []string, backend *child, backendAddr, certFile string, kube *kubeEnv) error {
	type backendCase struct {
		name     string
		rate     int
		targets  []target
		upstream string // host:port
		caFile   string
		// clusterToken is the credential Berth holds for the cluster.
		clusterToken string
	}
	const smallPath = "/api/v1/namespaces/default"
	cases := []backendCase{{name: "static", rate: o.rate, upstream: backendAddr, caFile: certFile, clusterToken: "static-backend-token",
		targets: []target{{Name: "direct", URL: "https://" + backendAddr + smallPath, Header: "Bearer static-backend-token", PGID: backend.pid()}}}}
	if kube != nil {
		kubeAddr := strings.TrimPrefix(kube.Server, "https://")
		cases = append(cases, backendCase{name: "kube", rate: o.kubeRate, upstream: kubeAddr, caFile: kube.CAFile, clusterToken: kube.UserToken,
			targets: []target{{Name: "direct", URL: kube.Server + smallPath, Header: "Bearer " + kube.AdminToken, PGID: kube.APIServerPID}}})
	}
	for i := range cases {
		c := &cases[i]
		// Berth: the bench user's token; the cluster sees the user by
		// impersonation.
		c.targets = append(c.targets, target{Name: "berth", URL: "https://" + b.addrs.HTTPS + "/proxy/clusters/" + c.name + smallPath,
			Header: "Bearer " + b.token, PGID: b.proc.pid()})
		if be != nil {
			c.targets = append(c.targets, target{Name: "berth-etcd", URL: "https://" + be.addrs.HTTPS + "/proxy/clusters/" + c.name + smallPath,
				Header: "Bearer " + be.token, PGID: be.proc.pid(), Etcd: etcdEndpoints})
		}
		// nginx and httputil pass the client's own credential through.
		url, pid, err := startNginx(nginx, filepath.Join(work, "nginx-"+c.name), "nginx-"+c.name, c.upstream, c.caFile, nil)
		if err != nil {
			return err
		}
		c.targets = append(c.targets, target{Name: "nginx", URL: url + smallPath, Header: c.targets[0].Header, PGID: pid})
		if c.name == "kube" {
			// nginx asking as Berth asks: Berth's credential for the
			// cluster and the impersonation headers it sends for the
			// bench user, so the apiserver does the same work for both
			// (with the admin token it skips the impersonation checks).
			headers := [][2]string{
				{"Authorization", "Bearer " + c.clusterToken},
				{"Impersonate-User", "berth:" + benchUser},
				{"Impersonate-Group", "berth:role:view"},
				{"Impersonate-Extra-berth.dev%2Fauth-method", "password"},
				{"Impersonate-Extra-berth.dev%2Fclient-ip", "127.0.0.1"},
				{"Impersonate-Extra-berth.dev%2Frequest-id", "$request_id"},
				{"Audit-ID", "$request_id"},
			}
			url, pid, err := startNginx(nginx, filepath.Join(work, "nginx-as-"+c.name), "nginx-as-"+c.name, c.upstream, c.caFile, headers)
			if err != nil {
				return err
			}
			c.targets = append(c.targets, target{Name: "nginx-as", URL: url + smallPath, Header: c.targets[0].Header, PGID: pid})
		}

		hdir := filepath.Join(work, "httputil-"+c.name)
		if err := os.MkdirAll(hdir, 0o700); err != nil {
			return err
		}
		if _, _, err := writeCert(hdir); err != nil {
			return err
		}
		ready := filepath.Join(hdir, "ready")
		hu, err := startChild("httputil-"+c.name, filepath.Join(hdir, "log"), nil, self, "httputil", "-dir", hdir,
			"-upstream", "https://"+c.upstream, "-ca", c.caFile, "-idle", fmt.Sprint(o.httputilIdle), "-ready", ready)
		if err != nil {
			return err
		}
		addr, err := waitFile(hu, ready, 10*time.Second)
		if err != nil {
			return err
		}
		c.targets = append(c.targets, target{Name: "httputil", URL: "https://" + string(addr) + smallPath, Header: c.targets[0].Header, PGID: hu.pid()})

		// The anchor: the smallest fasthttp reverse proxy.
		fdir := filepath.Join(work, "fasthttp-"+c.name)
		if err := os.MkdirAll(fdir, 0o700); err != nil {
			return err
		}
		if _, _, err := writeCert(fdir); err != nil {
			return err
		}
		ready = filepath.Join(fdir, "ready")
		fp, err := startChild("fasthttp-"+c.name, filepath.Join(fdir, "log"), nil, self, "fasthttp", "-dir", fdir,
			"-upstream", "https://"+c.upstream, "-ca", c.caFile, "-ready", ready, "-cpuprofile", childProfile(o, "fasthttp", c.name))
		if err != nil {
			return err
		}
		if addr, err = waitFile(fp, ready, 10*time.Second); err != nil {
			return err
		}
		c.targets = append(c.targets, target{Name: "fasthttp", URL: "https://" + string(addr) + smallPath, Header: c.targets[0].Header, PGID: fp.pid()})

		// Berth's proxy package alone, with the identity the gateway would
		// assert, and the credential Berth holds for the cluster.
		bdir := filepath.Join(work, "bare-"+c.name)
		if err := os.MkdirAll(bdir, 0o700); err != nil {
			return err
		}
		if _, _, err := writeCert(bdir); err != nil {
			return err
		}
		ready = filepath.Join(bdir, "ready")
		bp, err := startChild("bare-"+c.name, filepath.Join(bdir, "log"), nil, self, "bare", "-dir", bdir, "-cluster", c.name,
			"-server", "https://"+c.upstream, "-ca", c.caFile, "-token", c.clusterToken, "-ready", ready, "-cpuprofile", childProfile(o, "proxy-only", c.name))
		if err != nil {
			return err
		}
		if addr, err = waitFile(bp, ready, 10*time.Second); err != nil {
			return err
		}
		c.targets = append(c.targets, target{Name: "proxy-only", URL: "https://" + string(addr) + "/proxy/clusters/" + c.name + smallPath, PGID: bp.pid()})
	}

	if o.targets != "" {
		// Measured in the order given, after direct (every ratio is to
		// it): swapping two targets between invocations shows whether
		// their place in the round matters.
		for i := range cases {
			var picked []target
			for _, name := range append([]string{"direct"}, strings.Split(o.targets, ",")...) {
				if j := slices.IndexFunc(cases[i].targets, func(t target) bool { return t.Name == name }); j >= 0 && !slices.ContainsFunc(picked, func(t target) bool { return t.Name == name }) {
					picked = append(picked, cases[i].targets[j])
				}
			}
			cases[i].targets = picked
		}
	}
	for _, c := range cases {
		out := map[string]*smallResult{}
		res.Small[c.name] = out
		for _, t := range c.targets {
			out[t.Name] = &smallResult{}
			// Warm-up: connections, TLS sessions, caches, JIT-free but
			// lazily built state.
			if _, err := runWrk(ctx, tl, t, o.threads, o.conns, 3*time.Second); err != nil {
				return err
			}
		}
		for r := range o.runs {
			for _, t := range c.targets {
				tp, err := runWrk(ctx, tl, t, o.threads, o.conns, o.duration)
				if err != nil {
					return err
				}
				s := out[t.Name]
				s.RPS, s.CPUPerOp, s.Loads = append(s.RPS, tp.RPS), append(s.CPUPerOp, tp.ProxyCPU), append(s.Loads, tp.LoadStart, tp.LoadEnd)
				s.Requests, s.Seconds = append(s.Requests, tp.Requests), append(s.Seconds, tp.Seconds)
				logf("%s %s run %d: %.0f req/s, %.1f µs CPU/req (load %.1f → %.1f)", c.name, t.Name, r+1, tp.RPS, us(tp.ProxyCPU), tp.LoadStart, tp.LoadEnd)
				if len(t.Etcd) > 0 {
					s.Etcd = append(s.Etcd, tp.EtcdDelta)
					logf("%s %s run %d: etcd served %s for %d requests in %.1f s", c.name, t.Name, r+1, tp.EtcdDelta, tp.Requests, tp.Seconds)
				}
			}
		}
		for r := range o.runs {
			for _, t := range c.targets {
				lat, err := runVegeta(ctx, tl, work, t, c.rate, o.vegetaConns, o.duration)
				if err != nil {
					return err
				}
				s := out[t.Name]
				s.P50, s.P99, s.Max, s.Loads = append(s.P50, lat.P50), append(s.P99, lat.P99), append(s.Max, lat.Max), append(s.Loads, lat.LoadStart)
				s.Achieved = append(s.Achieved, lat.Throughput)
				logf("%s %s at %d/s run %d: p50 %.3f ms, p99 %.3f ms, %.0f answers/s (load %.1f)", c.name, t.Name, c.rate, r+1, ms(lat.P50), ms(lat.P99), lat.Throughput, lat.LoadStart)
			}
		}
		// The baselines' profiles, under the same load as Berth's
		// (profileBerth), on the static backend only.
		for _, t := range c.targets {
			if file := childProfile(o, t.Name, c.name); file != "" && (t.Name == "fasthttp" || t.Name == "proxy-only") {
				if err := profileChild(ctx, o, tl, t, file); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// childProfile is where the baseline named name writes its CPU profile
// for the backend case: in the results directory with -profile on the
// static backend, nowhere ("") otherwise.
func childProfile(o options, name, backendCase string) string {
	if !o.profile || backendCase != "static" {
		return ""
	}
	return filepath.Join(o.out, name+"-cpu.pprof")
}

// startNginx runs nginx in dir (its configuration, certificate and
// temporary files) in front of upstream, sending setHeaders in place of the
// client's (see nginxConfig), and returns its base URL and process group.
func startNginx(nginx, dir, name, upstream, caFile string, setHeaders [][2]string) (string, int, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return "", 0, err
	}
	if _, _, err := writeCert(dir); err != nil {
		return "", 0, err
	}
	port, err := freePort()
	if err != nil {
		return "", 0, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig(dir, port, upstream, caFile, setHeaders)), 0o600); err != nil {
		return "", 0, err
	}
	ng, err := startChild(name, filepath.Join(dir, "stderr.log"), nil, nginx, "-p", dir, "-c", conf, "-g", "daemon off;")
	if err != nil {
		return "", 0, err
	}
	if err := waitPort(ng, port, 10*time.Second); err != nil {
		return "", 0, err
	}
	return fmt.Sprintf("https://127.0.0.1:%d", port), ng.pid(), nil
}

// waitPort waits for a TCP listener on 127.0.0.1:port.
func waitPort(c *child, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if conn, err := dialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			conn.Close()
			return nil
		}
		if err := c.exited(); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listens on port %d after %s", c.name, port, timeout)
}

// profileBerth takes a CPU profile of the gateway b while wrk drives the
// small GET through it, and writes the profile and its top functions to
// files named after name.
func profileBerth(ctx context.Context, o options, tl tools, b *berth, name string) error {
	t := target{Name: name, URL: "https://" + b.addrs.HTTPS + "/proxy/clusters/static/api/v1/namespaces/default", Header: "Bearer " + b.token}
	errc := make(chan error, 1)
	go func() {
		_, err := runWrk(ctx, tl, t, o.threads, o.conns, 14*time.Second)
		errc <- err
	}()
	time.Sleep(2 * time.Second)
	prof, err := b.debugGet(ctx, "/debug/pprof/profile?seconds=10")
	if werr := <-errc; werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	file := filepath.Join(o.out, name+"-cpu.pprof")
	if err := os.WriteFile(file, []byte(prof), 0o644); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return writeTops(ctx, o.out, name, file)
}

// runGo runs the go command, returning what it printed.
func runGo(ctx context.Context, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "go", args...).CombinedOutput()
}

// median of a non-empty slice (the mean of the middle two for even sizes).
func median[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := append([]T(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread[T ~int64 | ~float64](v []T) (lo, hi T) {
	if len(v) == 0 {
		return 0, 0
	}
	lo, hi = v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
