package kubeenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The kubeconfig is written as JSON, which kubectl reads like YAML; the
// encoder takes care of quoting.
type kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Clusters       []namedCluster `json:"clusters"`
	Users          []namedUser    `json:"users"`
	Contexts       []namedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

type namedCluster struct {
	Name    string         `json:"name"`
	Cluster kubeconfigClus `json:"cluster"`
}

type kubeconfigClus struct {
	Server                   string `json:"server"`
	CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
}

type namedUser struct {
	Name string         `json:"name"`
	User kubeconfigUser `json:"user"`
}

type kubeconfigUser struct {
	Token string `json:"token,omitempty"`
}

type namedContext struct {
	Name    string        `json:"name"`
	Context kubeconfigCtx `json:"context"`
}

type kubeconfigCtx struct {
	Cluster string `json:"cluster"`
	User    string `json:"user"`
}

// WriteKubeconfig writes to path a kubeconfig with one cluster, one user and
// one current context: it talks to server (an https URL, possibly with a path
// such as https://127.0.0.1:8443/proxy/clusters/dev) with the bearer token,
// trusting the PEM CA certificates in caData (or the system roots when
// caData is empty). The file is created with mode 0600.
func WriteKubeconfig(path, server, token string, caData []byte) error {
	if server == "" {
		return errors.New("kubeenv: writing a kubeconfig: empty server URL")
	}
	const name = "berth-e2e"
	cfg := kubeconfig{
		APIVersion: "v1",
		Kind:       "Config",
		Clusters: []namedCluster{{
			Name:    name,
			Cluster: kubeconfigClus{Server: server, CertificateAuthorityData: caData},
		}},
		Users:          []namedUser{{Name: name, User: kubeconfigUser{Token: token}}},
		Contexts:       []namedContext{{Name: name, Context: kubeconfigCtx{Cluster: name, User: name}}},
		CurrentContext: name,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("kubeenv: encoding the kubeconfig for %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("kubeenv: creating the directory for %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("kubeenv: writing the kubeconfig: %w", err)
	}
	return nil
}
