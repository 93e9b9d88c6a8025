// Command testplugin serves the fakes as a real plugin process for the
// SDK's subprocess tests. It misbehaves on request: it prints to stdout
// while initializing (always, to prove the stdout guard), and
// BERTH_TESTPLUGIN_SPAWN=1 makes it start a copy of itself as a grandchild
// for the parent-death test.
package main

import (
	"fmt"
	"os"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/internal/fakes"
)

// A stray print during init, before Serve: without the guard it would be
// read by the gateway as a (broken) handshake line.
func init() {
	fmt.Println("testplugin: hello from init, on stdout")
}

func main() {
	fmt.Println("testplugin: hello from main, on stdout")
	fmt.Fprintln(os.Stderr, "testplugin: starting")
	sdk.Serve(fakes.New().Options())
}
