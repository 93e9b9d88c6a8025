package main

import (
	"encoding/base64"
	"fmt"
)

// kubeconfig renders a kubeconfig for one client-certificate identity,
// with everything embedded: the gateway refuses kubeconfigs that point at
// files on its host. name is a DNS label (checked at create), so it needs
// no YAML quoting.
func kubeconfig(name, server string, caPEM, certPEM, keyPEM []byte, user string) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[4]s
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[4]s
current-context: %[1]s
`, name, server, b64(caPEM), user, b64(certPEM), b64(keyPEM))
}
