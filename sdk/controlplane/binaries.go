package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvCacheDir names the environment variable that moves the cache root of
// deploy/e2e/build-k8s.sh away from $HOME/.cache/berth.
const EnvCacheDir = "BERTH_CACHE_DIR"

// CacheBinDir returns the directory build-k8s.sh puts the pinned binaries
// in: ${BERTH_CACHE_DIR:-$HOME/.cache/berth}/k8s/<PinnedVersion>/bin.
func CacheBinDir() (string, error) {
	root := os.Getenv(EnvCacheDir)
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locate the cache directory: %w", err)
		}
		root = filepath.Join(home, ".cache", "berth")
	}
	return filepath.Join(root, "k8s", PinnedVersion, "bin"), nil
}

// CheckExecutable returns nil when p is a file someone may execute.
func CheckExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// Place is where Find looks for a program.
type Place int

// The places Find knows.
const (
	// InPATH is the directories of $PATH, searched as exec.LookPath does.
	// A kube-apiserver or kubectl found there is not necessarily the pinned
	// version; callers that need it should look InCache only.
	InPATH Place = iota
	// InCache is CacheBinDir.
	InCache
)

// Find returns the absolute path of the first executable file called name
// in places, tried in order. Its error says where it looked.
func Find(name string, places ...Place) (string, error) {
	var tried []string
	for _, place := range places {
		switch place {
		case InPATH:
			if p, err := exec.LookPath(name); err == nil {
				if abs, err := filepath.Abs(p); err == nil {
					return abs, nil
				}
			}
			tried = append(tried, "PATH")
		case InCache:
			dir, err := CacheBinDir()
			if err != nil {
				tried = append(tried, fmt.Sprintf("the cache (%v)", err))
				continue
			}
			p := filepath.Join(dir, name)
			if CheckExecutable(p) == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", fmt.Errorf("%s not found (tried %s)", name, strings.Join(tried, ", "))
}
