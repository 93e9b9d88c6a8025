package sdk

import (
	"bufio"
	"io"
	"os"
	"regexp"
)

// handshakeLine matches go-plugin's handshake line:
// CORE-VERSION|APP-VERSION|NETWORK|ADDRESS|PROTOCOL[|SERVER-CERT[|MUX]].
var handshakeLine = regexp.MustCompile(`^\d+\|\d+\|(tcp|unix)\|[^|]*\|(grpc|netrpc)(\|.*)?\r?\n?$`)

// startedByBerth reports whether a Berth gateway (a go-plugin host with
// Berth's cookie variable) started the process. Other go-plugin hosts do
// not count: a program that imports the SDK for its types but serves
// another host with go-plugin's own Serve prints its handshake on the
// stdout the guard would take away.
func startedByBerth(getenv func(string) string) bool {
	return getenv(Handshake.MagicCookieKey) != ""
}

// routeStdout points os.Stdout at a pipe whose reader sends go-plugin's
// handshake line, and only it, to the real stdout; everything else written
// there goes to stderr. go-plugin prints the handshake with fmt.Printf
// (os.Stdout) and then replaces os.Stdout with its own stdio stream, so
// only writes made between now and then pass through the pipe, and those
// are exactly the ones that could otherwise get in front of the handshake.
func routeStdout() error {
	if err := guardStdio(); err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	go forwardHandshake(r, handshakeOut, origStderr)
	os.Stdout = w
	return nil
}

func forwardHandshake(r io.Reader, handshake, other io.Writer) {
	br := bufio.NewReader(r)
	sent := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if !sent && handshakeLine.MatchString(line) {
				_, _ = io.WriteString(handshake, line)
				sent = true
			} else {
				_, _ = io.WriteString(other, line)
			}
		}
		if err != nil {
			return
		}
	}
}
