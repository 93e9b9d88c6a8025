package clusters

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/berthgw/berth/gateway/fault"
)

// Connection is how the gateway reaches a cluster: the server, the CA that
// signs it, and the gateway's own credential there. Token, ClientCertData
// and ClientKeyData are secrets: sealed at rest, never returned.
type Connection struct {
	Server         string `json:"server"`
	TLSServerName  string `json:"tls_server_name,omitempty"`
	CAData         []byte `json:"ca_data,omitempty"`
	Token          string `json:"token,omitempty"`
	ClientCertData []byte `json:"client_certificate_data,omitempty"`
	ClientKeyData  []byte `json:"client_key_data,omitempty"`
}

// AuthType names the credential kind, for display.
func (c *Connection) AuthType() string {
	if c.Token != "" {
		return "token"
	}
	return "client_certificate"
}

// validate checks a connection is complete and safe for a gateway to use.
func (c *Connection) validate() error {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("server must be an https:// URL with a host and no query or user info")
	}
	hasCert := len(c.ClientCertData) > 0 || len(c.ClientKeyData) > 0
	switch {
	case c.Token != "" && hasCert:
		return errors.New("give either a token or a client certificate and key, not both")
	case c.Token == "" && !hasCert:
		return errors.New("a credential is required: token, or client_certificate_data with client_key_data")
	case hasCert && (len(c.ClientCertData) == 0 || len(c.ClientKeyData) == 0):
		return errors.New("client_certificate_data and client_key_data go together")
	}
	if strings.ContainsAny(c.Token, " \r\n\t") {
		return errors.New("token must not contain white space")
	}
	return nil
}

// FromKubeconfig takes the connection of one context (the current one when
// contextName is empty) from kubeconfig YAML, parsed by client-go. It
// refuses what a gateway must not do on a caller's behalf: read files on
// its own host (certificate-authority, token-file, client-certificate paths),
// run commands (exec plugins), use cloud auth providers, skip TLS
// verification, or go through a proxy.
func FromKubeconfig(data []byte, contextName string) (*Connection, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, errors.New("kubeconfig is not valid YAML kubeconfig")
	}
	if contextName == "" {
		contextName = cfg.CurrentContext
	}
	kctx, ok := cfg.Contexts[contextName]
	if contextName == "" || !ok {
		return nil, fmt.Errorf("kubeconfig has no context %q", contextName)
	}
	cl, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("context %q names cluster %q, which the kubeconfig does not define", contextName, kctx.Cluster)
	}
	ai, ok := cfg.AuthInfos[kctx.AuthInfo]
	if !ok {
		return nil, fmt.Errorf("context %q names user %q, which the kubeconfig does not define", contextName, kctx.AuthInfo)
	}
	switch {
	case cl.CertificateAuthority != "" || ai.ClientCertificate != "" || ai.ClientKey != "" || ai.TokenFile != "":
		return nil, errors.New("kubeconfig refers to files; embed them (certificate-authority-data, client-certificate-data, client-key-data, token)")
	case ai.Exec != nil || ai.AuthProvider != nil:
		return nil, errors.New("kubeconfig uses an exec or auth-provider plugin; give a token or client certificate instead")
	case cl.InsecureSkipTLSVerify:
		return nil, errors.New("kubeconfig disables TLS verification; give certificate-authority-data instead")
	case cl.ProxyURL != "":
		return nil, errors.New("kubeconfig proxy-url is not supported")
	case ai.Username != "" || ai.Password != "":
		return nil, errors.New("basic authentication is not supported; use a token or client certificate")
	case ai.Impersonate != "" || len(ai.ImpersonateGroups) > 0:
		return nil, errors.New("kubeconfig impersonation is not supported: Berth impersonates each user itself")
	}
	conn := &Connection{
		Server:         cl.Server,
		TLSServerName:  cl.TLSServerName,
		CAData:         cl.CertificateAuthorityData,
		Token:          ai.Token,
		ClientCertData: ai.ClientCertificateData,
		ClientKeyData:  ai.ClientKeyData,
	}
	if err := conn.validate(); err != nil {
		return nil, err
	}
	return conn, nil
}

// decodeB64 reads a kubeconfig-style base64 field (standard encoding).
func decodeB64(field, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fault.New(fault.Invalid, "%s must be base64 (as in a kubeconfig)", field)
	}
	return b, nil
}

// ClientKubeconfig writes a kubeconfig that reaches cluster name through
// Berth at server (Berth's public URL plus /proxy/clusters/<name>), trusting
// caPEM (Berth's certificate when self-signed; nil for a public CA), and
// authenticating with token.
func ClientKubeconfig(name, server string, caPEM []byte, token string) ([]byte, error) {
	ctxName := "berth-" + name
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ctxName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[ctxName] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: ctxName, AuthInfo: ctxName}
	cfg.CurrentContext = ctxName
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return out, nil
}
