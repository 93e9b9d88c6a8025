// Command berth is the Berth edge gateway: `berth serve` runs it, the other
// commands check its configuration and back up or restore its data.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthgw/berth/gateway"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/logbuffer"
)

// exitConfig is the exit status for a configuration error, distinct from a
// runtime failure (1) so scripts can tell them apart.
const exitConfig = 2

func main() {
	if err := newRoot(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		var ce *config.Error
		if errors.As(err, &ce) {
			os.Exit(exitConfig)
		}
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Berth: an edge gateway for fleets of Kubernetes clusters",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(), versionCmd(), configCmd(), backupCmd(), restoreCmd())
	root.AddCommand(clientCommands()...)
	root.AddCommand(pluginCmd())
	return root
}

func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	return config.Load(path, os.LookupEnv)
}

func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", "", "configuration file (default: the embedded configs/berth.yaml)")
}

// newLogger builds the process's logger as configured, and the writer its
// JSON handler writes to (nil for text), on which the gateway encodes its
// access lines itself (gateway.Options.AccessLog). The returned function
// writes out lines still batched in memory; call it before exit.
func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, io.Writer, func()) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	var jsonOut io.Writer
	h, flush := logbuffer.NewHandler(w, time.Duration(cfg.Log.FlushInterval), func(w io.Writer) slog.Handler {
		if cfg.Log.Format == "text" {
			return slog.NewTextHandler(w, opts)
		}
		jsonOut = w
		return slog.NewJSONHandler(w, opts)
	})
	return slog.New(h), jsonOut, flush
}

func serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			// Everything Berth writes under the data dir (Badger's files, its
			// LOCK, the admin socket) must be private to this account.
			syscall.Umask(0o077)
			log, accessLog, flush := newLogger(cfg, cmd.ErrOrStderr())
			defer flush()
			g, err := gateway.New(gateway.Options{Config: cfg, Logger: log, AccessLog: accessLog, Stdout: cmd.OutOrStdout()})
			if err != nil {
				return err
			}
			if err := g.Listen(); err != nil {
				_ = g.Close()
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return g.Serve(ctx)
		},
	}
	addConfigFlag(cmd)
	return cmd
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "berth", gateway.Version)
		},
	}
}

func configCmd() *cobra.Command {
	cfg := &cobra.Command{Use: "config", Short: "Work with the configuration"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration (file plus BERTH_* environment) and each plugin executable's checksum, and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if err := checkPluginExecutables(c); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	}
	addConfigFlag(check)
	cfg.AddCommand(check)
	return cfg
}

func backupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write a consistent backup of the data directory (works while berth serve runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			if out == "" {
				return errors.New("--out is required")
			}
			return backup(cfg, out, cmd.OutOrStdout())
		},
	}
	addConfigFlag(cmd)
	cmd.Flags().String("out", "", "file to write the backup to (created 0600; must not exist)")
	return cmd
}

// backup streams from the running server's admin socket when there is one,
// else opens the store itself. An etcd store is always read directly: it
// takes no lock, and a read at one revision is a consistent snapshot.
func backup(cfg *config.Config, out string, stdout io.Writer) (err error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(out)
		}
	}()
	via := "the running server"
	if body, ok := dialBackup(cfg); ok {
		defer body.Close()
		if _, err := io.Copy(f, body); err != nil {
			return fmt.Errorf("backup from running server: %w", err)
		}
	} else {
		via = "the data directory"
		if cfg.Store.Backend == config.BackendEtcd {
			via = "etcd"
		}
		opts, err := gateway.StoreOptions(cfg, nil, nil)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		db, err := store.Open(opts)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer db.Close()
		if err := db.Backup(f); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup of %s written to %s (from %s)\n", storeName(cfg), out, via)
	return nil
}

// storeName says which store cfg opens, for messages.
func storeName(cfg *config.Config) string {
	if cfg.Store.Backend == config.BackendEtcd {
		return "etcd " + strings.Join(cfg.Store.Etcd.Endpoints, ",") + " under " + cfg.Store.Etcd.Prefix
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg.DataDir
	}
	return abs
}

// dialBackup asks a running server for a backup over its admin socket;
// never on etcd, which any process may read.
func dialBackup(cfg *config.Config) (io.ReadCloser, bool) {
	if cfg.Store.Backend == config.BackendEtcd {
		return nil, false
	}
	sock := gateway.AdminSocketPath(cfg.DataDir)
	if _, err := os.Stat(sock); err != nil {
		return nil, false
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := client.Get("http://berth/backup")
	if err != nil {
		return nil, false // a stale socket: no server behind it
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, false
	}
	return resp.Body, true
}

func restoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore --in FILE",
		Short: "Load a backup into an empty data directory (berth serve must be stopped)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			in, _ := cmd.Flags().GetString("in")
			if in == "" {
				return errors.New("--in is required")
			}
			f, err := os.Open(in)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			defer f.Close()
			if body, ok := dialBackup(cfg); ok {
				body.Close()
				return errors.New("restore: berth serve is running on this data directory; stop it first")
			}
			syscall.Umask(0o077)
			opts, err := gateway.StoreOptions(cfg, nil, nil)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			opts.SyncWrites = true
			db, err := store.Open(opts)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if err := db.Restore(f); err != nil {
				db.Close()
				return err
			}
			if err := db.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s\n", in, storeName(cfg))
			// A backup holds encrypted values but not the key that opens them
			// (keeping the two apart is the point of encrypting).
			if _, err := os.Stat(filepath.Join(cfg.DataDir, secretbox.KeyFile)); cfg.SecretKey == "" && err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "note: copy %s from the old data dir (or set BERTH_SECRET_KEY) before berth serve: encrypted values need the same key\n", secretbox.KeyFile)
			}
			return nil
		},
	}
	addConfigFlag(cmd)
	cmd.Flags().String("in", "", "backup file made by berth backup")
	return cmd
}
