//go:build !unix

package sdk

import "os"

// On systems without dup2 the guard cannot move file descriptor 1; it only
// redirects os.Stdout (see routeStdout), which covers fmt.Print* after Serve
// starts.
var handshakeOut *os.File

func guardStdio() error {
	if handshakeOut == nil {
		handshakeOut = os.Stdout
	}
	return nil
}
