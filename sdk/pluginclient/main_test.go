package pluginclient_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk/pluginclient"
)

// envHelperHost turns the test binary into a stand-in gateway for the
// parent-death test: it starts the plugin named by the variable, prints
// the plugin's pid, and waits to be killed.
const envHelperHost = "BERTH_SDK_TEST_HELPER_HOST"

func TestMain(m *testing.M) {
	if bin := os.Getenv(envHelperHost); bin != "" {
		os.Exit(helperHost(bin))
	}
	os.Exit(m.Run())
}

func helperHost(bin string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pluginclient.Start(ctx, pluginclient.Config{Name: "helper", Path: bin, Env: os.Environ()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper host:", err)
		return 1
	}
	info, _ := p.ReattachInfo()
	fmt.Printf("pid %d\n", info.Pid)
	// Wait for SIGKILL; the bound keeps a broken test from leaving this
	// process behind forever.
	time.Sleep(2 * time.Minute)
	return 0
}
