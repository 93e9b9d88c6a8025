package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	utilproxy "k8s.io/apimachinery/pkg/util/proxy"
	apiproxy "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	kubeletpf "k8s.io/kubelet/pkg/cri/streaming/portforward"
	kubeletexec "k8s.io/kubelet/pkg/cri/streaming/remotecommand"

	"github.com/berthgw/berth/gateway/audit"
)

// upperExecutor is the "container": command "upper" copies stdin to stdout
// in upper case and says "stderr-ok" on stderr.
type upperExecutor struct{}

func (upperExecutor) ExecInContainer(_ context.Context, _ string, _ types.UID, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if len(cmd) != 1 || cmd[0] != "upper" {
		return fmt.Errorf("unknown command %q", cmd)
	}
	data, _ := io.ReadAll(in)
	out.Write(bytes.ToUpper(data))
	errw.Write([]byte("stderr-ok"))
	return nil
}

// echoForwarder is the pod's port: every forwarded connection reaches a
// local TCP echo server.
type echoForwarder struct{ addr string }

func (f echoForwarder) PortForward(ctx context.Context, _ string, _ types.UID, _ int32, stream io.ReadWriteCloser) error {
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	go io.Copy(c, stream)
	io.Copy(stream, c)
	return nil
}

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// streamingCluster stands in for what kubectl reaches for exec and
// port-forward: an API server front (TLS) that, like kube-apiserver,
// translates WebSocket exec (v5.channel.k8s.io) and WebSocket-tunnelled
// port-forward to SPDY, and behind it Kubernetes' own kubelet streaming
// server code. No kubelet can run here, so this is the real protocol
// stack minus the container runtime.
func streamingCluster(t *testing.T) *httptest.Server {
	const podPath = "/api/v1/namespaces/default/pods/box/"
	idle, create := 30*time.Second, 10*time.Second
	forwarder := echoForwarder{addr: echoServer(t)}
	kmux := http.NewServeMux()
	kmux.HandleFunc("/exec", func(w http.ResponseWriter, r *http.Request) {
		opts, err := kubeletexec.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		kubeletexec.ServeExec(w, r, upperExecutor{}, "box", "", "c", r.URL.Query()["command"], opts, idle, create,
			[]string{"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"})
	})
	kmux.HandleFunc("/portforward", func(w http.ResponseWriter, r *http.Request) {
		kubeletpf.ServePortForward(w, r, forwarder, "box", "", &kubeletpf.V4Options{}, idle, create, kubeletpf.SupportedProtocols)
	})
	kubelet := httptest.NewServer(kmux)
	t.Cleanup(kubelet.Close)

	// kubeletURL turns the API's exec parameters into the kubelet's, as
	// kube-apiserver does (stdin=true → input=1, …).
	kubeletURL := func(path string, r *http.Request) *url.URL {
		q, out := r.URL.Query(), url.Values{"command": r.URL.Query()["command"]}
		for api, kl := range map[string]string{"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"} {
			if q.Get(api) == "true" || q.Get(api) == "1" {
				out.Set(kl, "1")
			}
		}
		u, _ := url.Parse(kubelet.URL + path + "?" + out.Encode())
		return u
	}
	upgradeProxy := func(path string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h := utilproxy.NewUpgradeAwareHandler(kubeletURL(path, r), http.DefaultTransport.(*http.Transport).Clone(), false, true, errorResponder{})
			h.ServeHTTP(w, r)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"gitVersion":"v1.31.14-streaming"}`)
	})
	mux.HandleFunc(podPath+"exec", func(w http.ResponseWriter, r *http.Request) {
		if !wsstream.IsWebSocketRequest(r) {
			upgradeProxy("/exec")(w, r)
			return
		}
		q := r.URL.Query()
		apiproxy.NewStreamTranslatorHandler(kubeletURL("/exec", r), http.DefaultTransport.(*http.Transport).Clone(), 0, apiproxy.Options{
			Stdin: q.Get("stdin") == "true", Stdout: q.Get("stdout") == "true", Stderr: q.Get("stderr") == "true",
		}).ServeHTTP(w, r)
	})
	pf := upgradeProxy("/portforward")
	mux.Handle(podPath+"portforward", apiproxy.NewTranslatingHandler(pf, apiproxy.NewTunnelingHandler(pf), wsstream.IsWebSocketRequestWithTunnelingProtocol))
	api := httptest.NewUnstartedServer(mux)
	api.EnableHTTP2 = false
	api.StartTLS()
	t.Cleanup(api.Close)
	return api
}

type errorResponder struct{}

func (errorResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	http.Error(w, err.Error(), http.StatusBadGateway)
}

// Exec and port-forward through Berth with client-go's own clients, over
// SPDY/3.1 and over WebSocket, as kubectl 1.31 does.
func TestProxyExecAndPortForward(t *testing.T) {
	api := streamingCluster(t)
	ag := startAuth(t, map[string]string{"BERTH_RATE_LIMITS_PROXY_REQUESTS": "0"})
	admin := ag.login(t, "admin", adminPassword).AccessToken
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "stream", "server": api.URL, "token": "backend-token",
		"certificate_authority_data": base64.StdEncoding.EncodeToString(caPEM),
	}, bearer(admin))
	ag.secret("backend-token")

	cfg := &rest.Config{
		Host:            ag.https + "/proxy/clusters/stream",
		BearerToken:     admin,
		TLSClientConfig: rest.TLSClientConfig{CAData: ag.CertificatePEM()},
	}
	execURL, _ := url.Parse(cfg.Host + "/api/v1/namespaces/default/pods/box/exec?command=upper&stdin=true&stdout=true&stderr=true")
	pfURL, _ := url.Parse(cfg.Host + "/api/v1/namespaces/default/pods/box/portforward")

	spdyExec, err := remotecommand.NewSPDYExecutor(cfg, "POST", execURL)
	if err != nil {
		t.Fatal(err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(cfg, "GET", execURL.String())
	if err != nil {
		t.Fatal(err)
	}
	for name, ex := range map[string]remotecommand.Executor{"spdy": spdyExec, "websocket-v5": wsExec} {
		t.Run("exec/"+name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hello berth " + name), Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			if stdout.String() != strings.ToUpper("hello berth "+name) || stderr.String() != "stderr-ok" {
				t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
		})
	}

	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", pfURL)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(pfURL, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, dialer := range map[string]httpstream.Dialer{"spdy": spdyDialer, "websocket": wsDialer} {
		t.Run("portforward/"+name, func(t *testing.T) {
			stop, ready := make(chan struct{}), make(chan struct{})
			pf, err := portforward.New(dialer, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- pf.ForwardPorts() }()
			select {
			case <-ready:
			case err := <-errc:
				t.Fatalf("port-forward: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("port-forward not ready")
			}
			defer close(stop)
			ports, _ := pf.GetPorts()
			for i := 0; i < 3; i++ { // several connections over one forward
				c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
				if err != nil {
					t.Fatal(err)
				}
				msg := fmt.Sprintf("ping %s %d\n", name, i)
				c.Write([]byte(msg))
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				got, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err != nil || got != msg {
					t.Fatalf("echo through port-forward: %q %v", got, err)
				}
			}
		})
	}
	if !ag.hasEvent(t, "cluster", "proxy.exec", audit.ResultSuccess) || !ag.hasEvent(t, "cluster", "proxy.portforward", audit.ResultSuccess) {
		t.Error("exec and port-forward not audited")
	}
}
