package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthgw/berth/client"
	"github.com/berthgw/berth/gateway"
)

// clientNow is the client commands' clock. Tests that move Berth's clock
// move this one with it.
var clientNow = time.Now

// clientCommands are the commands that use a Berth as a signed-in user
// (docs/cli.md).
func clientCommands() []*cobra.Command {
	client.UserAgent = "berth-cli/" + gateway.Version
	return []*cobra.Command{loginCmd(), logoutCmd(), whoamiCmd(), clustersCmd(), kubeconfigCmd(),
		credentialCmd(), joinTokenCmd(), operationsCmd(), nodesCmd()}
}

func newStore() (*client.Store, error) {
	dir, err := client.DefaultDir()
	if err != nil {
		return nil, err
	}
	return &client.Store{Dir: dir, Now: clientNow}, nil
}

func addServerFlag(cmd *cobra.Command) {
	cmd.Flags().String("server", "", "Berth's address (default: the one last signed in to)")
}

// apiClient is the signed-in client of the command's --server.
func apiClient(cmd *cobra.Command) (*client.Client, error) {
	st, err := newStore()
	if err != nil {
		return nil, err
	}
	flag, _ := cmd.Flags().GetString("server")
	server, err := st.Resolve(flag)
	if err != nil {
		return nil, err
	}
	return st.Client(server)
}

// commandContext ends on SIGINT or SIGTERM.
func commandContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func loginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login <url>",
		Short: "Sign in to a Berth and keep the session in your configuration directory",
		Long: `Sign in to a Berth with a username and password (asked for on the terminal,
or --username NAME --password-stdin for scripts) or through single sign-on
(--sso). The session's refresh token is kept in $XDG_CONFIG_HOME/berth/
credentials.json (0600); no password is stored.`,
		Args: cobra.ExactArgs(1),
		RunE: runLogin,
	}
	f := cmd.Flags()
	f.String("username", "", "username (asked for when not given)")
	f.Bool("password-stdin", false, "read the password from the first line of standard input")
	f.Bool("sso", false, "sign in with the browser through Berth's single sign-on")
	f.String("provider", "", "with --sso: the provider's name (default: the only one)")
	f.Duration("sso-timeout", 5*time.Minute, "with --sso: how long to wait for the browser")
	f.String("certificate-authority", "", "PEM file of the certificate authority that signs Berth's certificate")
	f.Bool("insecure-skip-tls-verify", false, "do not verify Berth's certificate (insecure: for tests only)")
	return cmd
}

func runLogin(cmd *cobra.Command, args []string) error {
	server, err := client.ParseServer(args[0])
	if err != nil {
		return err
	}
	st, err := newStore()
	if err != nil {
		return err
	}
	f := cmd.Flags()
	caFile, _ := f.GetString("certificate-authority")
	insecure, _ := f.GetBool("insecure-skip-tls-verify")
	useSSO, _ := f.GetBool("sso")
	username, _ := f.GetString("username")
	passwordStdin, _ := f.GetBool("password-stdin")
	if useSSO && (username != "" || passwordStdin) {
		return errors.New("--sso signs in through the browser: it takes no --username or --password-stdin")
	}
	if caFile != "" && insecure {
		return errors.New("give --certificate-authority or --insecure-skip-tls-verify, not both")
	}
	entry := &client.Entry{Server: server}
	if old, err := st.Entry(server); err == nil && caFile == "" && !insecure {
		// Signing in again keeps how the server was verified before.
		entry.CAData, entry.Insecure = old.CAData, old.Insecure
	}
	if caFile != "" {
		if entry.CAData, err = readCA(caFile); err != nil {
			return err
		}
		entry.Insecure = false
	}
	if insecure {
		entry.CAData, entry.Insecure = nil, true
	}
	if entry.Insecure {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: Berth's certificate is not verified (--insecure-skip-tls-verify): anyone on the way can read your password and tokens")
	}
	hc, err := client.HTTPClient(entry.TLS())
	if err != nil {
		return err
	}
	cl := &client.Client{Server: server, HTTP: hc, UserAgent: client.UserAgent}
	ctx, cancel := commandContext()
	defer cancel()

	var tokens *client.Tokens
	var start time.Time
	if useSSO {
		provider, _ := f.GetString("provider")
		timeout, _ := f.GetDuration("sso-timeout")
		sso := &client.SSO{Client: cl, Provider: provider, Timeout: timeout, Now: clientNow,
			Open: func(u string) error { return openBrowser(cmd.ErrOrStderr(), u) }}
		tokens, start, err = sso.Login(ctx)
	} else {
		password, perr := readCredentials(cmd, &username, passwordStdin)
		if perr != nil {
			return perr
		}
		start = clientNow()
		tokens, err = cl.Login(ctx, username, password)
	}
	if err != nil {
		return err
	}
	// Who signed in, for the messages (and to prove the token works).
	who := &client.Client{Server: server, HTTP: hc, UserAgent: client.UserAgent,
		Token: func(context.Context, bool) (string, error) { return tokens.AccessToken, nil }}
	me, _, err := who.Me(ctx)
	if err != nil {
		return fmt.Errorf("signed in, but reading the account failed: %w", err)
	}
	entry.Username = me.Username
	if err := st.SaveLogin(entry, tokens, start); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Signed in to %s as %s.\n", server, me.Username)
	return nil
}

// readCA reads a PEM file holding at least one certificate.
func readCA(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--certificate-authority: %w", err)
	}
	rest, found := data, false
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return nil, fmt.Errorf("--certificate-authority %s: %w", path, err)
			}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("--certificate-authority %s holds no PEM certificate", path)
	}
	return data, nil
}

// readCredentials gets the username and password: from the flags and one
// line of standard input, or asked for on the terminal without echo.
func readCredentials(cmd *cobra.Command, username *string, passwordStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if passwordStdin {
		if *username == "" {
			return "", errors.New("--password-stdin needs --username")
		}
		// One byte past the longest password accepted: a longer line is
		// refused, not cut and sent in part.
		const maxPassword = 4096
		line, err := bufio.NewReader(io.LimitReader(in, maxPassword+1)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if len(pw) > maxPassword {
			return "", fmt.Errorf("--password-stdin: the first line is too long to be a password (over %d bytes)", maxPassword)
		}
		if pw == "" {
			return "", errors.New("--password-stdin: standard input holds no password")
		}
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if in != os.Stdin || !term.IsTerminal(fd) {
		return "", errors.New("no terminal to ask for the password: use --username NAME --password-stdin, or --sso")
	}
	errw := cmd.ErrOrStderr()
	if *username == "" {
		fmt.Fprint(errw, "Username: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading the username: %w", err)
		}
		*username = strings.TrimSpace(line)
	}
	fmt.Fprint(errw, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(errw)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(pw), nil
}

// openBrowser shows u: in the browser when one can be started, and always
// as a line, for a machine without one.
func openBrowser(w io.Writer, u string) error {
	fmt.Fprintf(w, "Sign in in your browser. If it does not open, visit:\n\n  %s\n\n", u)
	var c *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		c = exec.Command("open", u)
	case "linux", "freebsd", "openbsd", "netbsd":
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return nil
		}
		c = exec.Command("xdg-open", u)
	default:
		return nil
	}
	if err := c.Start(); err == nil {
		go func() { _ = c.Wait() }()
	}
	return nil
}

func logoutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "End the session at Berth and forget it here",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := newStore()
			if err != nil {
				return err
			}
			flag, _ := cmd.Flags().GetString("server")
			server, err := st.Resolve(flag)
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			if err := st.Logout(ctx, server); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed out of %s.\n", server)
			return nil
		},
	}
	addServerFlag(cmd)
	return cmd
}

func whoamiCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the signed-in user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			me, raw, err := cl.Me(ctx)
			if err != nil {
				return err
			}
			return output(cmd, raw, func(t *table) {
				t.row("SERVER", "USERNAME", "ROLES", "GROUPS")
				t.row(cl.Server, me.Username, strings.Join(me.Roles, ","), strings.Join(me.Groups, ","))
			})
		},
	}
	addServerFlag(cmd)
	addOutputFlag(cmd)
	return cmd
}

func clustersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clusters",
		Short: "List the clusters you can reach, with your role and their status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			cs, raw, err := cl.Clusters(ctx)
			if err != nil {
				return err
			}
			return output(cmd, list(raw), func(t *table) {
				t.row("NAME", "ROLE", "STATUS", "CONNECTION", "VERSION")
				for _, c := range cs {
					t.row(c.Name, dash(c.Role), c.Status, dash(c.ConnectionStatus), dash(c.KubernetesVersion))
				}
			})
		},
	}
	addServerFlag(cmd)
	addOutputFlag(cmd)
	cmd.AddCommand(clusterCreateCmd())
	return cmd
}

func clusterCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create a cluster through a provisioner plugin (an operation; --wait follows it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			var p client.Provision
			p.Provisioner, _ = f.GetString("provisioner")
			p.KubernetesVersion, _ = f.GetString("kubernetes-version")
			p.ControlPlane.CPU, _ = f.GetString("cpu")
			p.ControlPlane.Memory, _ = f.GetString("memory")
			p.Workers.CPU, _ = f.GetString("worker-cpu")
			p.Workers.Memory, _ = f.GetString("worker-memory")
			ctx, cancel := commandContext()
			defer cancel()
			op, raw, err := cl.CreateCluster(ctx, args[0], p)
			if err != nil {
				return err
			}
			if wait, _ := f.GetBool("wait"); wait {
				fmt.Fprintf(cmd.ErrOrStderr(), "Creating cluster %s (operation %s).\n", args[0], op.ID)
				return watchOperation(ctx, cmd, cl, op.ID)
			}
			return output(cmd, raw, func(t *table) { operationRows(t, []client.Operation{*op}, clientNow()) })
		},
	}
	f := cmd.Flags()
	f.String("provisioner", "", "the provisioner plugin (default: Berth's default provisioner)")
	f.String("kubernetes-version", "", "Kubernetes version (default: the provisioner's)")
	f.String("cpu", "500m", "control plane CPU")
	f.String("memory", "1Gi", "control plane memory")
	f.String("worker-cpu", "0", "workers' CPU in all")
	f.String("worker-memory", "0", "workers' memory in all")
	f.Bool("wait", false, "follow the operation to its end")
	addServerFlag(cmd)
	addOutputFlag(cmd)
	return cmd
}

func credentialCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "credential --server URL --cluster NAME",
		Short: "kubectl's credential plugin: print an ExecCredential with a short-lived token",
		Long: `Print a client.authentication.k8s.io/v1 ExecCredential holding an access
token for --server and its expiry. kubectl runs this through the kubeconfigs
berth kubeconfig writes; the token is renewed with the stored session when
it comes close to its expiry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := newStore()
			if err != nil {
				return err
			}
			flag, _ := cmd.Flags().GetString("server")
			if flag == "" {
				return errors.New("--server is required")
			}
			server, err := client.ParseServer(flag)
			if err != nil {
				return err
			}
			cluster, _ := cmd.Flags().GetString("cluster")
			ctx, cancel := commandContext()
			defer cancel()
			cred, err := st.Credential(ctx, server, &client.Asker{PID: os.Getppid(), Cluster: cluster}, false)
			if err != nil {
				return err
			}
			return writeExecCredential(cmd.OutOrStdout(), cred)
		},
	}
	cmd.Flags().String("server", "", "Berth's address")
	cmd.Flags().String("cluster", "", "the cluster kubectl is reaching")
	return cmd
}

// execCredential is client.authentication.k8s.io/v1's ExecCredential, the
// part a credential plugin writes.
type execCredential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Token               string `json:"token"`
		ExpirationTimestamp string `json:"expirationTimestamp"`
	} `json:"status"`
}

func writeExecCredential(w io.Writer, cred client.Credential) error {
	ec := execCredential{APIVersion: "client.authentication.k8s.io/v1", Kind: "ExecCredential"}
	ec.Status.Token = cred.Token
	// Whole seconds, rounded down: kubectl must never hold the token
	// longer than it was told.
	ec.Status.ExpirationTimestamp = cred.ExpiresAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	return json.NewEncoder(w).Encode(ec)
}

func joinTokenCmd() *cobra.Command {
	jt := &cobra.Command{Use: "join-token", Short: "Join tokens that let machines join a cluster"}
	create := &cobra.Command{
		Use:   "create <cluster>",
		Short: "Make a join token and print the command a machine runs to join",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			ttl, _ := cmd.Flags().GetDuration("ttl")
			maxUses, _ := cmd.Flags().GetInt("max-uses")
			ctx, cancel := commandContext()
			defer cancel()
			t, raw, err := cl.CreateJoinToken(ctx, args[0], ttl, maxUses)
			if err != nil {
				return err
			}
			if format, _ := cmd.Flags().GetString("output"); format != "" && format != "table" {
				return output(cmd, raw, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Join token %s for cluster %s, valid until %s. On each machine, as root:\n\n  %s\n\n",
				t.ID, args[0], t.ExpiresAt.Local().Format(time.RFC1123), t.JoinCommand)
			fmt.Fprintln(w, "The command holds the token: it is shown only now.")
			return nil
		},
	}
	create.Flags().Duration("ttl", time.Hour, "how long the token works (1m to 168h)")
	create.Flags().Int("max-uses", 0, "how many machines may join with it (0: no limit)")
	addServerFlag(create)
	addOutputFlag(create)
	jt.AddCommand(create)
	return jt
}

func operationsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operations",
		Short: "List operations (long work on clusters), newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			var f client.OperationFilter
			f.Cluster, _ = cmd.Flags().GetString("cluster")
			f.Status, _ = cmd.Flags().GetString("status")
			f.Type, _ = cmd.Flags().GetString("type")
			ctx, cancel := commandContext()
			defer cancel()
			ops, raw, err := cl.Operations(ctx, f)
			if err != nil {
				return err
			}
			return output(cmd, list(raw), func(t *table) { operationRows(t, ops, clientNow()) })
		},
	}
	cmd.Flags().String("cluster", "", "only this cluster's")
	cmd.Flags().String("status", "", "only these: pending, running, succeeded, failed, cancelled")
	cmd.Flags().String("type", "", "only these: create, update, delete")
	addServerFlag(cmd)
	addOutputFlag(cmd)

	watch := &cobra.Command{
		Use:   "watch <id>",
		Short: "Follow an operation to its end (a progress bar on a terminal, a line per change otherwise)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			return watchOperation(ctx, cmd, cl, args[0])
		},
	}
	watch.Flags().Duration("interval", time.Second, "how often to ask Berth")
	addServerFlag(watch)
	cmd.AddCommand(watch)
	return cmd
}

func operationRows(t *table, ops []client.Operation, now time.Time) {
	t.row("ID", "CLUSTER", "TYPE", "STATUS", "PROGRESS", "STAGE", "AGE")
	for _, o := range ops {
		t.row(o.ID, o.Cluster, o.Type, o.Status, fmt.Sprintf("%d%%", o.Percent), dash(o.Stage), age(now, o.CreatedAt))
	}
}

func nodesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nodes [cluster]",
		Short: "List the nodes of a cluster, or of every cluster you can reach",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := apiClient(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			var (
				ns     []client.Node
				raw    []json.RawMessage
				failed []client.FailedCluster
			)
			fleet := len(args) == 0
			if fleet {
				ns, raw, failed, err = cl.FleetNodes(ctx)
			} else {
				ns, raw, err = cl.Nodes(ctx, args[0])
			}
			if err != nil {
				return err
			}
			for _, f := range failed {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: cluster %s left out (%d): %s\n", f.Cluster, f.Code, f.Message)
			}
			now := clientNow()
			return output(cmd, list(raw), func(t *table) {
				head := []string{"NAME", "STATUS", "ROLES", "VERSION", "INTERNAL-IP", "AGE"}
				if fleet {
					head = append([]string{"CLUSTER"}, head...)
				}
				t.row(head...)
				for _, n := range ns {
					status := "NotReady"
					if n.Ready {
						status = "Ready"
					}
					if n.Unschedulable {
						status += ",SchedulingDisabled"
					}
					row := []string{n.Name, status, dash(strings.Join(n.Roles, ",")), dash(n.KubeletVersion), dash(n.InternalIP), age(now, n.CreatedAt)}
					if fleet {
						row = append([]string{n.Cluster}, row...)
					}
					t.row(row...)
				}
			})
		},
	}
	addServerFlag(cmd)
	addOutputFlag(cmd)
	return cmd
}
