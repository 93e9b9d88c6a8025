//go:build unix

package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkTrusted refuses an executable that anyone but root and the
// gateway's own user could have put in place or could replace: it, and
// every directory above it, must belong to one of them and be writable
// by no one else: not by others (a sticky directory such as /tmp
// excepted: there only a file's owner may replace it), and by its group
// only when that is root's or the gateway's own group (a umask of 002
// with a group of one's own). path must have no symlinks left.
func checkTrusted(path string) error {
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: cannot read its owner", p)
		}
		if sys.Uid != 0 && sys.Uid != euid {
			return fmt.Errorf("%s belongs to uid %d, neither root nor the gateway's user", p, sys.Uid)
		}
		sticky := st.IsDir() && st.Mode()&os.ModeSticky != 0
		if st.Mode().Perm()&0o002 != 0 && !sticky {
			return fmt.Errorf("%s is writable by others", p)
		}
		if st.Mode().Perm()&0o020 != 0 && !sticky && sys.Gid != 0 && sys.Gid != egid {
			return fmt.Errorf("%s is writable by group %d", p, sys.Gid)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
