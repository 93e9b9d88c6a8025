package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func kubeconfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubeconfig <cluster>...",
		Short: "Write a kubeconfig for clusters, authenticated by the berth credential plugin",
		Long: `Write a kubeconfig that reaches each cluster through Berth
(<berth>/proxy/clusters/<name>) as you. Its user runs "berth credential",
which hands kubectl short-lived tokens from your session: the kubeconfig
holds no secret. It goes to standard output, or with --merge into the first
file of $KUBECONFIG (else ~/.kube/config), with the context berth-<name>.`,
		Args: cobra.MinimumNArgs(1),
		RunE: runKubeconfig,
	}
	cmd.Flags().Bool("merge", false, "merge into $KUBECONFIG's first file (else ~/.kube/config) instead of printing")
	addServerFlag(cmd)
	return cmd
}

func runKubeconfig(cmd *cobra.Command, args []string) error {
	st, err := newStore()
	if err != nil {
		return err
	}
	flag, _ := cmd.Flags().GetString("server")
	server, err := st.Resolve(flag)
	if err != nil {
		return err
	}
	entry, err := st.Entry(server)
	if err != nil {
		return err
	}
	cl, err := st.Client(server)
	if err != nil {
		return err
	}
	ctx, cancel := commandContext()
	defer cancel()
	// Each cluster must exist and be reachable by the user: a typo fails
	// here, not at the first kubectl.
	for _, name := range args {
		if _, _, err := cl.Cluster(ctx, name); err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
	}
	ca := entry.CAData
	if len(ca) == 0 && !entry.Insecure {
		// Verified by the system's roots: embed Berth's certificate when
		// it is self-signed (installed in this machine's trust store, say),
		// so kubectl elsewhere trusts it too.
		if ca, err = cl.CA(ctx); err != nil {
			return fmt.Errorf("Berth's certificate: %w", err)
		}
	}
	command, err := credentialCommand()
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	for _, name := range args {
		key := "berth-" + name
		cfg.Clusters[key] = &clientcmdapi.Cluster{Server: server + "/proxy/clusters/" + name,
			CertificateAuthorityData: ca, InsecureSkipTLSVerify: entry.Insecure}
		cfg.AuthInfos[key] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
			APIVersion:      "client.authentication.k8s.io/v1",
			Command:         command,
			Args:            []string{"credential", "--server", server, "--cluster", name},
			InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
			InstallHint:     "berth credential is Berth's command-line client (docs/cli.md); sign in with: berth login " + server,
		}}
		cfg.Contexts[key] = &clientcmdapi.Context{Cluster: key, AuthInfo: key}
	}
	cfg.CurrentContext = "berth-" + args[0]
	if entry.Insecure {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: this kubeconfig does not verify Berth's certificate (you signed in with --insecure-skip-tls-verify)")
	}
	if merge, _ := cmd.Flags().GetBool("merge"); merge {
		return mergeKubeconfig(cmd, cfg, args)
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(out)
	return err
}

// credentialCommand is the kubeconfig's command for the credential plugin:
// "berth" when that is this program on PATH, else this program's absolute
// path.
func credentialCommand() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locating the berth executable: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return "", fmt.Errorf("locating the berth executable: %w", err)
	}
	if onPath, err := exec.LookPath("berth"); err == nil {
		if p, err := filepath.EvalSymlinks(onPath); err == nil {
			a, errA := os.Stat(p)
			b, errB := os.Stat(self)
			if errA == nil && errB == nil && os.SameFile(a, b) {
				return "berth", nil
			}
		}
	}
	return self, nil
}

// kubeconfigPath is where --merge writes: the first file of $KUBECONFIG,
// as kubectl config set-context does, else ~/.kube/config.
func kubeconfigPath() (string, error) {
	for _, p := range filepath.SplitList(os.Getenv("KUBECONFIG")) {
		if p != "" {
			return p, nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("no home directory for ~/.kube/config: set KUBECONFIG")
	}
	return filepath.Join(home, ".kube", "config"), nil
}

func mergeKubeconfig(cmd *cobra.Command, add *clientcmdapi.Config, names []string) error {
	path, err := kubeconfigPath()
	if err != nil {
		return err
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, os.ErrNotExist) {
		cfg, err = clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	for k, v := range add.Clusters {
		cfg.Clusters[k] = v
	}
	for k, v := range add.AuthInfos {
		cfg.AuthInfos[k] = v
	}
	for k, v := range add.Contexts {
		cfg.Contexts[k] = v
	}
	cfg.CurrentContext = add.CurrentContext
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// WriteToFile keeps the file 0600.
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ctxs := make([]string, len(names))
	for i, n := range names {
		ctxs[i] = "berth-" + n
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Wrote context %s to %s; current context: %s.\n", strings.Join(ctxs, ", "), path, add.CurrentContext)
	return nil
}
