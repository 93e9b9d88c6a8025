package controlplane

import "strconv"

// Etcd describes one etcd member: alone, or of a new cluster.
type Etcd struct {
	// Name is the member's name.
	Name string
	// DataDir holds etcd's data.
	DataDir string
	// ClientURL and PeerURL are where it listens, e.g.
	// http://127.0.0.1:2379; https when CertFile is set.
	ClientURL, PeerURL string
	// CertFile and KeyFile, when set, serve both listeners over TLS, and
	// then every client and peer must present a certificate signed by
	// TrustedCAFile. A single member still opens its peer port, which
	// should not be plain text when the client port is not.
	CertFile, KeyFile, TrustedCAFile string
	// InitialCluster is etcd's --initial-cluster (name=peerURL,…) for a
	// member of a new multi-member cluster; empty: this member alone.
	InitialCluster string
	// Extra is appended to the command line.
	Extra []string
}

// Args returns etcd's command line.
func (e Etcd) Args() []string {
	cluster := e.InitialCluster
	if cluster == "" {
		cluster = e.Name + "=" + e.PeerURL
	}
	args := []string{
		"--name=" + e.Name,
		e.DataDirArg(),
		"--listen-client-urls=" + e.ClientURL,
		"--advertise-client-urls=" + e.ClientURL,
		"--listen-peer-urls=" + e.PeerURL,
		"--initial-advertise-peer-urls=" + e.PeerURL,
		"--initial-cluster=" + cluster,
		"--initial-cluster-state=new",
	}
	if e.CertFile != "" {
		args = append(args,
			"--cert-file="+e.CertFile,
			"--key-file="+e.KeyFile,
			"--trusted-ca-file="+e.TrustedCAFile,
			"--client-cert-auth=true",
			"--peer-cert-file="+e.CertFile,
			"--peer-key-file="+e.KeyFile,
			"--peer-trusted-ca-file="+e.TrustedCAFile,
			"--peer-client-cert-auth=true",
		)
	}
	args = append(args, e.Extra...)
	return append(args, "--logger=zap", "--log-outputs=stderr")
}

// DataDirArg is the --data-dir argument of Args: it names this member's own
// files, so it tells its process from any other etcd's (see
// ProcessHasArg).
func (e Etcd) DataDirArg() string { return "--data-dir=" + e.DataDir }

// APIServer describes a kube-apiserver on 127.0.0.1 with RBAC, bootstrap
// tokens and ServiceAccount tokens, for a control plane that has no
// controller-manager, scheduler or kubelet.
type APIServer struct {
	// EtcdURL is etcd's client URL.
	EtcdURL string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile, when set, are the CA that
	// signed etcd's certificate and the client certificate the API server
	// presents to etcd.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// Port is the secure port.
	Port int
	// CertDir is where the API server may write certificates of its own.
	CertDir string
	// CertFile and KeyFile are the serving certificate (see
	// APIServerLeaf).
	CertFile, KeyFile string
	// ClientCAFile verifies client certificates: their common name is the
	// user, their organizations the groups.
	ClientCAFile string
	// ServiceAccountKeyFile and ServiceAccountPubFile sign and verify
	// ServiceAccount tokens (see WriteServiceAccountKeys).
	ServiceAccountKeyFile, ServiceAccountPubFile string
	// ServiceCIDR is the --service-cluster-ip-range.
	ServiceCIDR string
	// Extra is appended to the command line.
	Extra []string
}

// Args returns kube-apiserver's command line.
func (a APIServer) Args() []string {
	args := []string{"--etcd-servers=" + a.EtcdURL}
	if a.EtcdCertFile != "" {
		args = append(args,
			"--etcd-cafile="+a.EtcdCAFile,
			"--etcd-certfile="+a.EtcdCertFile,
			"--etcd-keyfile="+a.EtcdKeyFile,
		)
	}
	args = append(args,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(a.Port),
		"--cert-dir="+a.CertDir,
		a.CertFileArg(),
		"--tls-private-key-file="+a.KeyFile,
		"--client-ca-file="+a.ClientCAFile,
		"--enable-bootstrap-token-auth=true",
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+a.ServiceAccountPubFile,
		"--service-account-signing-key-file="+a.ServiceAccountKeyFile,
		"--service-cluster-ip-range="+a.ServiceCIDR,
		// There is no controller-manager to make ServiceAccount tokens, so
		// the admission plugin that requires them would refuse every Pod.
		"--disable-admission-plugins=ServiceAccount",
		// Priority and fairness costs CPU for a queueing a small control
		// plane does not need.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	)
	return append(args, a.Extra...)
}

// CertFileArg is the --tls-cert-file argument of Args: it names this
// server's own files, so it tells its process from any other API server's
// (see ProcessHasArg).
func (a APIServer) CertFileArg() string { return "--tls-cert-file=" + a.CertFile }
