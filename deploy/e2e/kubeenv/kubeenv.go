// Package kubeenv starts a real Kubernetes control plane — Debian's etcd and
// the pinned kube-apiserver built by deploy/e2e/build-k8s.sh — on loopback,
// for tests that must talk to a genuine API server: authentication, RBAC,
// watches, discovery and error bodies all come from upstream code.
//
// There is no scheduler, controller-manager or kubelet: objects are stored
// and served, but Pods never run, namespaces get no default ServiceAccount
// (the ServiceAccount admission plugin is disabled so that Pods can still be
// created) and garbage collection does not happen.
//
// Typical use in a test:
//
//	env := kubeenv.ForTest(t, kubeenv.Options{})
//	out, err := env.Kubectl(ctx, "get", "ns")
//
// or, outside the testing helpers:
//
//	env, err := kubeenv.Start(ctx, kubeenv.Options{Dir: dir})
//	if err != nil { ... }
//	defer env.Stop()
package kubeenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/internal/freeport"
	"github.com/berthgw/berth/sdk/controlplane"
)

// Identities written to the apiserver's --token-auth-file.
const (
	// AdminUser is the user name of Env.AdminToken; it is in system:masters.
	AdminUser = "berth-e2e-admin"
	// UnprivilegedUser is the user name of Env.UserToken. No RBAC rule grants
	// it anything beyond what every authenticated user may do.
	UnprivilegedUser = "berth-e2e-user"
	// UnprivilegedGroup is the only group (besides system:authenticated) of
	// UnprivilegedUser, so tests can bind roles to it.
	UnprivilegedGroup = "berth-e2e-users"
	// ServiceAccountIssuer is the apiserver's --service-account-issuer.
	ServiceAccountIssuer = controlplane.ServiceAccountIssuer
	// ServiceClusterIPRange is the apiserver's --service-cluster-ip-range.
	ServiceClusterIPRange = serviceCIDR
)

// DefaultStartTimeout bounds how long Start waits for etcd and
// kube-apiserver to become ready when Options.StartTimeout is zero. It is
// generous because CI machines have two shared cores.
const DefaultStartTimeout = 3 * time.Minute

// stopGrace is how long a process gets to exit on SIGTERM before SIGKILL.
const stopGrace = 15 * time.Second

// Options configure Start.
type Options struct {
	// Dir holds everything the environment writes: PKI, token file,
	// kubeconfigs, etcd's data and the process logs. Required; t.TempDir()
	// is a good choice.
	Dir string
	// Binaries overrides where the programs are found. When nil,
	// FindBinaries is used.
	Binaries *Binaries
	// StartTimeout bounds the wait for etcd and /readyz; zero means
	// DefaultStartTimeout. The context passed to Start can cut it shorter.
	StartTimeout time.Duration
	// ExtraAPIServerArgs are appended to kube-apiserver's command line, for
	// example "--feature-gates=...".
	ExtraAPIServerArgs []string
}

// Env is a running control plane. Its fields are read-only.
type Env struct {
	// Server is the apiserver's URL, https://127.0.0.1:<port>.
	Server string
	// CAData is the PEM of the CA that signed the apiserver's serving
	// certificate.
	CAData []byte
	// CAFile is the path of CAData on disk.
	CAFile string
	// AdminToken is a bearer token of AdminUser, in group system:masters.
	AdminToken string
	// Kubeconfig is the path of a kubeconfig for Server with AdminToken.
	Kubeconfig string
	// UserToken is a bearer token of UnprivilegedUser, for RBAC tests.
	UserToken string
	// UserKubeconfig is the path of a kubeconfig for Server with UserToken.
	UserKubeconfig string
	// KubectlPath is the pinned kubectl.
	KubectlPath string
	// Binaries are the programs the environment runs.
	Binaries Binaries
	// EtcdURL is etcd's client URL, http://127.0.0.1:<port>.
	EtcdURL string
	// Dir is Options.Dir.
	Dir string
	// EtcdLog and APIServerLog are the files the processes' stdout and
	// stderr go to; read them when a test fails.
	EtcdLog, APIServerLog string
	// EtcdPID and APIServerPID are the process ids. Each process leads its
	// own process group, whose id is the same number.
	EtcdPID, APIServerPID int

	etcd, apiserver *controlplane.Process
	apiserverArgs   []string
	stopOnce        sync.Once
	stopErr         error
	baseline        *baseline // set by Mark
}

// Start launches etcd and kube-apiserver as child processes, each in its own
// process group, and returns once /readyz answers ok to the admin token. On
// error nothing is left running. The context bounds only the start-up; call
// Stop to end the environment.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if opts.Dir == "" {
		return nil, errors.New("kubeenv: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("kubeenv: resolving %s: %w", opts.Dir, err)
	}
	var bins Binaries
	if opts.Binaries != nil {
		bins = *opts.Binaries
	} else if bins, err = FindBinaries(); err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	logDir := filepath.Join(dir, "logs")
	for _, d := range []string{dir, logDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("kubeenv: creating %s: %w", d, err)
		}
	}
	keys, err := writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("kubeenv: writing PKI: %w", err)
	}
	ports, err := freeport.Pick(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	env := &Env{
		Server:         "https://127.0.0.1:" + strconv.Itoa(apiPort),
		CAData:         keys.caCertPEM,
		CAFile:         keys.caFile,
		AdminToken:     keys.adminToken,
		Kubeconfig:     filepath.Join(dir, "admin.kubeconfig"),
		UserToken:      keys.userToken,
		UserKubeconfig: filepath.Join(dir, "user.kubeconfig"),
		KubectlPath:    bins.Kubectl,
		Binaries:       bins,
		EtcdURL:        "http://127.0.0.1:" + strconv.Itoa(etcdClient),
		Dir:            dir,
		EtcdLog:        filepath.Join(logDir, "etcd.log"),
		APIServerLog:   filepath.Join(logDir, "kube-apiserver.log"),
	}
	if err := WriteKubeconfig(env.Kubeconfig, env.Server, env.AdminToken, env.CAData); err != nil {
		return nil, err
	}
	if err := WriteKubeconfig(env.UserKubeconfig, env.Server, env.UserToken, env.CAData); err != nil {
		return nil, err
	}

	env.etcd, err = startProcess("etcd", bins.Etcd, controlplane.Etcd{
		Name:      "berth-e2e",
		DataDir:   filepath.Join(dir, "etcd"),
		ClientURL: env.EtcdURL,
		PeerURL:   "http://127.0.0.1:" + strconv.Itoa(etcdPeer),
	}.Args(), env.EtcdLog)
	if err != nil {
		return nil, err
	}
	env.EtcdPID = env.etcd.Pid
	etcdHTTP := &http.Client{Timeout: 5 * time.Second}
	if err := poll(ctx, env.etcd, func(ctx context.Context) error {
		return controlplane.EtcdHealthy(ctx, etcdHTTP, env.EtcdURL)
	}); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("kubeenv: etcd did not become healthy: %w\n--- tail of %s ---\n%s", err, env.EtcdLog, controlplane.TailFile(env.EtcdLog, 40))
	}

	env.apiserverArgs = controlplane.APIServer{
		EtcdURL:               env.EtcdURL,
		Port:                  apiPort,
		CertDir:               filepath.Join(dir, "apiserver-certs"),
		CertFile:              keys.certFile,
		KeyFile:               keys.keyFile,
		ClientCAFile:          keys.caFile,
		ServiceAccountKeyFile: keys.saKeyFile,
		ServiceAccountPubFile: keys.saPubFile,
		ServiceCIDR:           ServiceClusterIPRange,
		Extra: append([]string{
			"--token-auth-file=" + keys.tokenFile,
			"--allow-privileged=true",
		}, opts.ExtraAPIServerArgs...),
	}.Args()
	env.apiserver, err = startProcess("kube-apiserver", bins.KubeAPIServer, env.apiserverArgs, env.APIServerLog)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	env.APIServerPID = env.apiserver.Pid
	if err := env.waitReady(ctx); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("kubeenv: kube-apiserver did not become ready: %w\n--- tail of %s ---\n%s", err, env.APIServerLog, controlplane.TailFile(env.APIServerLog, 60))
	}
	return env, nil
}

// startProcess starts one program of the environment in its own process
// group; on Linux it dies with the test process even if Stop is never
// called.
func startProcess(name, path string, args []string, logPath string) (*controlplane.Process, error) {
	p, err := controlplane.Start(controlplane.Command{Name: name, Path: path, Args: args, LogFile: logPath, DieWithParent: true})
	if err != nil {
		return nil, fmt.Errorf("kubeenv: %w", err)
	}
	return p, nil
}

// poll calls check until it returns nil, the process exits, or ctx ends.
func poll(ctx context.Context, p *controlplane.Process, check func(context.Context) error) error {
	return controlplane.Poll(ctx, func(ctx context.Context) error {
		if err := p.Exited(); err != nil {
			return controlplane.Permanent(err)
		}
		return check(ctx)
	})
}

// HTTPClient returns a client that trusts the apiserver's CA. It sends no
// credentials; add an Authorization header per request.
func (e *Env) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CAData)
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		},
	}
}

func (e *Env) waitReady(ctx context.Context) error {
	client := controlplane.HTTPClient(e.CAData)
	return poll(ctx, e.apiserver, func(ctx context.Context) error {
		return controlplane.APIServerReady(ctx, client, e.Server, e.AdminToken)
	})
}

// Stop ends kube-apiserver and then etcd: SIGTERM to each process group,
// SIGKILL if it has not exited after 15 seconds, and waits for the
// processes. It is safe to call more than once; later calls return the first
// result. Data under Dir is left in place.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		var errs []error
		for _, p := range []*controlplane.Process{e.apiserver, e.etcd} {
			if p == nil {
				continue
			}
			if err := p.Stop(stopGrace); err != nil {
				errs = append(errs, fmt.Errorf("kubeenv: %w", err))
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

// RestartAPIServer stops kube-apiserver (SIGTERM, as an upgrade or a
// crash-looping control plane would) and starts it again on the same port
// with the same flags, then waits for /readyz. Clients' kept-alive
// connections to the old process are left dead, which is what tests of
// reconnection need. Not safe to call concurrently with Stop.
func (e *Env) RestartAPIServer(ctx context.Context) error {
	if err := e.apiserver.Stop(stopGrace); err != nil {
		return fmt.Errorf("kubeenv: %w", err)
	}
	p, err := startProcess("kube-apiserver", e.Binaries.KubeAPIServer, e.apiserverArgs, e.APIServerLog)
	if err != nil {
		return err
	}
	e.apiserver, e.APIServerPID = p, p.Pid
	ctx, cancel := context.WithTimeout(ctx, DefaultStartTimeout)
	defer cancel()
	if err := e.waitReady(ctx); err != nil {
		return fmt.Errorf("kubeenv: kube-apiserver did not become ready again: %w\n--- tail of %s ---\n%s", err, e.APIServerLog, controlplane.TailFile(e.APIServerLog, 60))
	}
	return nil
}

// Kubectl runs the pinned kubectl as the admin user and returns its stdout.
// On failure the error includes kubectl's stderr.
func (e *Env) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	return e.KubectlWith(ctx, e.Kubeconfig, args...)
}

// KubectlWith runs the pinned kubectl with the given kubeconfig (for
// example UserKubeconfig, or one from WriteKubeconfig pointing at Berth) and
// returns its stdout. On failure the error includes kubectl's stderr.
func (e *Env) KubectlWith(ctx context.Context, kubeconfig string, args ...string) ([]byte, error) {
	full := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--cache-dir=" + filepath.Join(e.Dir, "kubectl-cache"),
	}, args...)
	cmd := exec.CommandContext(ctx, e.KubectlPath, full...)
	// Without KUBECONFIG, which could point kubectl elsewhere.
	cmd.Env = controlplane.Environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("kubeenv: kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// WriteKubeconfig writes a kubeconfig for server, token and caData to path;
// see the package-level WriteKubeconfig. It is here so tests holding an Env
// need no other import, e.g. to point kubectl at the Berth proxy:
//
//	env.WriteKubeconfig(p, berthURL+"/proxy/clusters/dev", berthToken, berthCA)
func (e *Env) WriteKubeconfig(path, server, token string, caData []byte) error {
	return WriteKubeconfig(path, server, token, caData)
}

// Logs returns the last n lines of the etcd and kube-apiserver logs, for a
// failing test to print.
func (e *Env) Logs(n int) string {
	return fmt.Sprintf("--- %s ---\n%s\n--- %s ---\n%s", e.EtcdLog, controlplane.TailFile(e.EtcdLog, n), e.APIServerLog, controlplane.TailFile(e.APIServerLog, n))
}

// ForTest starts an environment for t, or skips/fails t as MustBinaries
// does when the binaries are missing. An empty opts.Dir becomes
// t.TempDir(). Stop runs in t.Cleanup, and the process logs are printed if
// t failed.
func ForTest(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Binaries == nil {
		b := MustBinaries(t)
		opts.Binaries = &b
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	env, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("starting the Kubernetes test environment: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubeenv logs:\n%s", env.Logs(40))
		}
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the Kubernetes test environment: %v", err)
		}
	})
	return env
}
