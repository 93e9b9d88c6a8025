package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthgw/berth/gateway/config"
)

// pluginCmd holds the commands for plugin authors and operators.
func pluginCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Short: "Work with plugin executables"}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash PATH",
		Short: "Print the SHA-256 a plugins.instances entry pins for the executable at PATH",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sum, err := executableSHA256(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sum)
			return nil
		},
	})
	return cmd
}

// executableSHA256 is the hex SHA-256 of the regular, executable file at
// path: what the gateway checks before it starts a plugin.
func executableSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("plugin executable: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("plugin executable: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("plugin executable %s: not an executable file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("plugin executable %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkPluginExecutables is what config check adds for plugins: each
// declared executable exists, is executable, and has the pinned SHA-256
// (the mismatch names both digests, so the fix is a copy): what berth
// serve would refuse at start. Errors are *config.Error naming the
// entry's key.
func checkPluginExecutables(cfg *config.Config) error {
	var errs []error
	for i, p := range cfg.Plugins.Instances {
		key := fmt.Sprintf("plugins.instances[%d]", i)
		sum, err := executableSHA256(p.Path)
		if err != nil {
			errs = append(errs, &config.Error{Key: key + ".path", Problem: err.Error()})
			continue
		}
		if sum != p.SHA256 {
			errs = append(errs, &config.Error{Key: key + ".sha256", Problem: fmt.Sprintf(
				"plugin %q: checksums did not match: the configuration expects %s, but %s has %s", p.Name, p.SHA256, p.Path, sum)})
		}
	}
	return errors.Join(errs...)
}
