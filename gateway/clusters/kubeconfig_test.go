package clusters

import (
	"strings"
	"testing"
)

const kubeconfigTmpl = `apiVersion: v1
kind: Config
current-context: main
clusters:
- name: c
  cluster:
    server: SERVER
    EXTRA_CLUSTER
users:
- name: u
  user:
    USER
contexts:
- name: main
  context: {cluster: c, user: u}
- name: other
  context: {cluster: c, user: u}
`

func kubeconfig(server, extraCluster, user string) []byte {
	r := strings.NewReplacer("SERVER", server, "EXTRA_CLUSTER", extraCluster, "USER", user)
	return []byte(r.Replace(kubeconfigTmpl))
}

func TestFromKubeconfig(t *testing.T) {
	ca := "certificate-authority-data: Zm9v"
	tests := []struct {
		name    string
		data    []byte
		context string
		wantErr string
		token   string
	}{
		{"token", kubeconfig("https://10.0.0.1:6443", ca, "token: abc"), "", "", "abc"},
		{"named context", kubeconfig("https://10.0.0.1:6443", ca, "token: abc"), "other", "", "abc"},
		{"unknown context", kubeconfig("https://10.0.0.1:6443", ca, "token: abc"), "nope", "no context", ""},
		{"not yaml", []byte("{{{"), "", "not valid", ""},
		{"http server", kubeconfig("http://10.0.0.1:6443", ca, "token: abc"), "", "https://", ""},
		{"CA file", kubeconfig("https://h:6443", "certificate-authority: /etc/passwd", "token: abc"), "", "refers to files", ""},
		{"token file", kubeconfig("https://h:6443", ca, "tokenFile: /etc/shadow"), "", "refers to files", ""},
		{"client cert file", kubeconfig("https://h:6443", ca, "client-certificate: /root/c.pem\n    client-key: /root/k.pem"), "", "refers to files", ""},
		{"exec plugin", kubeconfig("https://h:6443", ca, "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, interactiveMode: Never}"), "", "exec", ""},
		{"auth provider", kubeconfig("https://h:6443", ca, "auth-provider: {name: gcp}"), "", "auth-provider", ""},
		{"insecure", kubeconfig("https://h:6443", "insecure-skip-tls-verify: true", "token: abc"), "", "TLS verification", ""},
		{"proxy url", kubeconfig("https://h:6443", "proxy-url: http://evil:3128", "token: abc"), "", "proxy-url", ""},
		{"basic auth", kubeconfig("https://h:6443", ca, "username: a\n    password: b"), "", "basic", ""},
		{"own impersonation", kubeconfig("https://h:6443", ca, "token: abc\n    as: system:admin"), "", "impersonation", ""},
		{"no credential", kubeconfig("https://h:6443", ca, "{}"), "", "credential is required", ""},
		{"cert without key", kubeconfig("https://h:6443", ca, "client-certificate-data: Zm9v"), "", "go together", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromKubeconfig(tt.data, tt.context)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "abc") {
					t.Errorf("error echoes the token: %v", err)
				}
				return
			}
			if err != nil || c.Token != tt.token || string(c.CAData) != "foo" {
				t.Fatalf("got %+v %v", c, err)
			}
		})
	}
}

func TestClientKubeconfigRoundTrip(t *testing.T) {
	data, err := ClientKubeconfig("prod", "https://edge:8443/proxy/clusters/prod", []byte("PEM"), "brt_tok")
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromKubeconfig(data, "")
	if err != nil || c.Server != "https://edge:8443/proxy/clusters/prod" || c.Token != "brt_tok" || string(c.CAData) != "PEM" {
		t.Fatalf("round trip: %+v %v\n%s", c, err, data)
	}
}
