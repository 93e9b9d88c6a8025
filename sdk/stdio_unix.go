//go:build unix

package sdk

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// handshakeOut is the process's real stdout, kept aside for go-plugin's
// handshake line. After guardStdio, file descriptor 1 (and with it
// os.Stdout, fmt.Println, and any C code) writes to stderr.
var (
	handshakeOut *os.File
	guardOnce    sync.Once
	guardErr     error
)

// The guard is installed while the package initializes, before the
// plugin's own main package runs its init functions (it imports this
// package, so this runs first), and only when Berth started the process: a
// gateway, a tool or another host's plugin importing the SDK for its types
// is left alone.
func init() {
	if startedByBerth(os.Getenv) {
		_ = guardStdio()
	}
}

func guardStdio() error {
	guardOnce.Do(func() {
		fd, err := unix.Dup(1)
		if err != nil {
			guardErr = err
			return
		}
		unix.CloseOnExec(fd)
		if err := unix.Dup2(2, 1); err != nil {
			_ = unix.Close(fd)
			guardErr = err
			return
		}
		handshakeOut = os.NewFile(uintptr(fd), "/dev/stdout")
	})
	return guardErr
}
