// Package replicas proves Berth's replicas with real parts: a three-member
// etcd cluster (Debian's etcd), three `berth serve` processes on it, nginx
// (Debian's) balancing them, a real kube-apiserver behind them and the
// pinned kubectl in front. The tests kill replicas and etcd members with
// SIGKILL and restart Berth replica by replica.
package replicas

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/internal/freeport"
)

const adminPassword = "admin-Password-0001"

var berthBin string

// TestMain builds the real binary once.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-replicas-")
	if err != nil {
		panic(err)
	}
	berthBin = filepath.Join(dir, "berth")
	out, err := exec.Command("go", "build", "-o", berthBin, "../../../cmd/berth").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleet is three Berth replicas on one etcd cluster behind nginx.
type fleet struct {
	etcd     *etcdenv.Cluster
	replicas []*replica
	lb       string // https://127.0.0.1:<port>, nginx
	lbCA     []byte // PEM of nginx's certificate, which is its own CA
	dir      string
}

// replica is one `berth serve` process; it keeps its ports and data
// directory across restarts.
type replica struct {
	name      string
	env       []string
	args      []string // after "serve"
	http      string   // http://127.0.0.1:<port>
	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan error
	logs      *bytes.Buffer
	startedAt int
	proxied   atomic.Int32 // proxied requests this start has logged
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	return startFleetWith(t, nil)
}

// startFleetWith is startFleet with a configuration file for each replica:
// config(i) is the YAML of replica i (0-based), or "" for none.
func startFleetWith(t *testing.T, config func(i int) string) *fleet {
	t.Helper()
	kubeenv.MustBinaries(t)
	nginx := "/usr/sbin/nginx"
	if _, err := os.Stat(nginx); err != nil {
		if kubeenv.Required() {
			t.Fatalf("nginx is missing (deploy/e2e/build-k8s.sh installs it): %v", err)
		}
		t.Skipf("SKIPPED, NOT PASSED: nginx is missing: %v", err)
	}
	f := &fleet{etcd: etcdenv.ForTest(t, 3), dir: t.TempDir()}
	key := make([]byte, 32)
	rand.Read(key)
	ports, err := freeport.Pick(7)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := &replica{
			name: fmt.Sprint("r", i+1),
			http: "http://127.0.0.1:" + strconv.Itoa(ports[2*i]),
		}
		r.env = []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"BERTH_DATA_DIR=" + filepath.Join(f.dir, r.name),
			"BERTH_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(ports[2*i]),
			"BERTH_HTTPS_ADDR=127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
			"BERTH_STORE_BACKEND=etcd",
			"BERTH_STORE_ETCD_ENDPOINTS=" + strings.Join(f.etcd.Endpoints(), ","),
			"BERTH_SECRET_KEY=" + hex.EncodeToString(key),
			"BERTH_ADMIN_PASSWORD=" + adminPassword,
			// Every request reaches Berth from nginx's address: limits per
			// address would throttle the whole test.
			"BERTH_RATE_LIMITS_AUTH_REQUESTS=0",
			"BERTH_RATE_LIMITS_API_REQUESTS=0",
			"BERTH_RATE_LIMITS_PROXY_REQUESTS=0",
			// Open watches hold a stopping replica for at most this long.
			"BERTH_LIMITS_SHUTDOWN_TIMEOUT=2s",
		}
		if config != nil {
			if yaml := config(i); yaml != "" {
				path := filepath.Join(f.dir, r.name+".yaml")
				if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				r.args = []string{"--config", path}
			}
		}
		f.replicas = append(f.replicas, r)
	}
	// One replica first: it creates the admin; the others find it.
	f.replicas[0].start(t)
	f.replicas[1].start(t)
	f.replicas[2].start(t)
	f.lb = "https://127.0.0.1:" + strconv.Itoa(ports[6])
	f.startNginx(t, nginx, ports[6])
	return f
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir, for
// nginx: kubectl sends a bearer token only over TLS.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth-replicas-lb"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "lb.crt"), filepath.Join(dir, "lb.key")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile, certPEM
}

// startNginx balances the replicas' plain-HTTP listeners. Idempotent
// requests that fail to reach one replica (refused, reset) are retried on
// the next, as a production balancer is set up to; streams are not
// buffered.
func (f *fleet) startNginx(t *testing.T, bin string, port int) {
	t.Helper()
	var upstreams strings.Builder
	for _, r := range f.replicas {
		fmt.Fprintf(&upstreams, "    server %s max_fails=1 fail_timeout=1s;\n", strings.TrimPrefix(r.http, "http://"))
	}
	dir := filepath.Join(f.dir, "nginx")
	os.MkdirAll(dir, 0o700)
	certFile, keyFile, certPEM := selfSigned(t, dir)
	f.lbCA = certPEM
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream berth {
%[2]s    keepalive 16;
  }
  server {
    listen 127.0.0.1:%[3]d ssl;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    location / {
      proxy_pass http://berth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
    }
  }
}
`, dir, upstreams.String(), port, certFile, keyFile)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx:\n%s%s", out.String(), log)
		}
	})
	until(t, "nginx answers", func() bool {
		resp, err := client.Get(f.lb + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// start runs the replica and waits until it serves and is ready.
func (r *replica) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"serve"}, r.args...)...)
	cmd.Env = r.env
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	exited := make(chan error, 1)
	r.proxied.Store(0)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			mu.Unlock()
			var line struct{ Msg, Route string }
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch {
			case line.Msg == "berth serving":
				once.Do(func() { close(serving) })
			case line.Msg == "request" && strings.HasPrefix(line.Route, "/proxy/"):
				r.proxied.Add(1)
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-serving:
	case err := <-exited:
		t.Fatalf("%s exited at start: %v\n%s", r.name, err, logs.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not start", r.name)
	}
	r.mu.Lock()
	r.cmd, r.exited, r.logs = cmd, exited, logs
	r.startedAt++
	r.mu.Unlock()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			mu.Lock()
			lines := strings.Split(logs.String(), "\n")
			mu.Unlock()
			t.Logf("%s (start %d), last log lines:\n%s", r.name, r.startedAt, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	})
	until(t, r.name+" ready", func() bool { return statusOf(r.http+"/readyz") == 200 })
}

// pid is the running process's id.
func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

// kill9 ends the replica as a crash would.
func (r *replica) kill9() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop asks the replica to shut down and waits until it has.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		if err != nil {
			t.Errorf("%s exited after SIGTERM with %v", r.name, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop", r.name)
	}
}

// until polls cond, bounded (60 s).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 600 {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

// client trusts the balancer's certificate (set by startNginx).
var client = &http.Client{Timeout: 30 * time.Second}

func statusOf(url string) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// call sends a JSON request with a bearer token and decodes a JSON answer
// into out when out is not nil. A transport error is status 0.
func call(method, url, token string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w: %s", method, url, err, data)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, errors.New(strings.TrimSpace(string(data)))
	}
	return resp.StatusCode, nil
}

func login(t *testing.T, base string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status, err := call("POST", base+"/api/v1/auth/login", "", map[string]string{"username": "admin", "password": adminPassword}, &tok); status != 200 {
		t.Fatalf("sign in at %s: %d %v", base, status, err)
	}
	return tok.AccessToken
}

func me(base, token string) int {
	status, _ := call("GET", base+"/api/v1/auth/me", token, nil, nil)
	return status
}
