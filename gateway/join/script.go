package join

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// ShellQuote makes s one single-quoted POSIX shell word: nothing inside
// single quotes is special except the quote itself, which is closed,
// escaped and reopened.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ScriptInput is what a join script is made from.
type ScriptInput struct {
	Cluster        string
	APIServer      string
	CAPEM          []byte
	CAHash         string
	BootstrapToken string
}

// scriptTemplate is a POSIX sh script. Every value it carries arrives
// through ShellQuote or inside a heredoc with a quoted delimiter, so no
// cluster name, server URL or option can inject shell. The CA is pinned:
// when openssl is present the script checks the CA's public-key hash, as
// kubeadm's --discovery-token-ca-cert-hash does.
var scriptTemplate = template.Must(template.New("join").Parse(`#!/bin/sh
# Berth node join script: sets up the kubelet's TLS bootstrap against a
# cluster. It writes the cluster CA and a bootstrap kubeconfig, then starts
# the kubelet, which asks the cluster for its client certificate.
#   BERTH_JOIN_ROOT     write under this directory instead of /
#   BERTH_JOIN_DRY_RUN  1: stop before touching systemd or the kubelet
# Values below are single-quoted literals on purpose: nothing in them expands.
# Messages go through printf '%s\n', never echo, which in some shells (dash)
# reads backslashes in the values it prints.
# shellcheck disable=SC2016
set -eu

CLUSTER={{.Cluster}}
API_SERVER={{.APIServer}}
CA_HASH={{.CAHash}}
KUBE_DIR="${BERTH_JOIN_ROOT:-}/etc/kubernetes"

umask 077
mkdir -p "$KUBE_DIR/pki"

cat > "$KUBE_DIR/pki/ca.crt" <<'BERTH_CA_END'
{{.CA}}BERTH_CA_END

if command -v openssl >/dev/null 2>&1; then
	got="sha256:$(openssl x509 -in "$KUBE_DIR/pki/ca.crt" -noout -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.* //')"
	if [ "$got" != "$CA_HASH" ]; then
		printf '%s\n' "berth: the cluster CA does not match its pinned hash $CA_HASH" >&2
		exit 1
	fi
else
	printf '%s\n' "berth: openssl not found; the CA pin $CA_HASH was not checked" >&2
fi

cat > "$KUBE_DIR/bootstrap-kubelet.conf" <<'BERTH_KUBECONFIG_END'
{{.Kubeconfig}}BERTH_KUBECONFIG_END

printf '%s\n' "berth: wrote the bootstrap kubeconfig for cluster $CLUSTER ($API_SERVER)"
if [ "${BERTH_JOIN_DRY_RUN:-0}" = "1" ]; then
	printf '%s\n' "berth: dry run; the kubelet was not started"
	exit 0
fi

if ! command -v kubelet >/dev/null 2>&1; then
	printf '%s\n' "berth: kubelet is not installed; install it and a container runtime, then run this again" >&2
	exit 1
fi
mkdir -p /etc/systemd/system/kubelet.service.d
cat > /etc/systemd/system/kubelet.service.d/10-berth.conf <<'BERTH_UNIT_END'
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
BERTH_UNIT_END
systemctl daemon-reload
systemctl enable --now kubelet
printf '%s\n' "berth: kubelet started; it will join $CLUSTER once its certificate request is approved"
`))

// Script renders the join script.
func Script(in ScriptInput) ([]byte, error) {
	// Re-encode the CA from its parsed form: the heredoc then holds only
	// PEM armour and base64, never its own end marker.
	var ca bytes.Buffer
	rest := in.CAPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			_ = pem.Encode(&ca, &pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})
		}
	}
	if ca.Len() == 0 {
		return nil, errors.New("join script: cluster has no CA certificate")
	}
	// The kubeconfig is JSON (valid YAML) with JSON-quoted strings, so a
	// server URL cannot break out of its string either.
	kubeconfig := fmt.Sprintf(`{"apiVersion":"v1","kind":"Config","clusters":[{"name":"cluster","cluster":{"server":%s,"certificate-authority-data":%s}}],"users":[{"name":"kubelet-bootstrap","user":{"token":%s}}],"contexts":[{"name":"bootstrap","context":{"cluster":"cluster","user":"kubelet-bootstrap"}}],"current-context":"bootstrap"}`,
		jsonString(in.APIServer), jsonString(base64.StdEncoding.EncodeToString(ca.Bytes())), jsonString(in.BootstrapToken))
	if strings.ContainsAny(kubeconfig, "\n\r") {
		return nil, errors.New("join script: unexpected line break in kubeconfig")
	}
	var out bytes.Buffer
	err := scriptTemplate.Execute(&out, map[string]string{
		"Cluster":    ShellQuote(in.Cluster),
		"APIServer":  ShellQuote(in.APIServer),
		"CAHash":     ShellQuote(in.CAHash),
		"CA":         ca.String(),
		"Kubeconfig": kubeconfig + "\n",
	})
	return out.Bytes(), err
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
