//go:build unix

package sdk

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// parentPollInterval is how often the plugin checks that the gateway lives.
var parentPollInterval = 500 * time.Millisecond

// watchParent calls exit when the process that started the plugin dies.
// When a parent dies its children are re-parented (to init or a subreaper),
// so a change of os.Getppid is the signal. Polling is used rather than
// prctl(PR_SET_PDEATHSIG) because that fires when the parent *thread* that
// forked us exits, which in a Go gateway can happen while the gateway lives.
func watchParent(logger hclog.Logger, exit func(int)) {
	ppid := os.Getppid()
	go func() {
		t := time.NewTicker(parentPollInterval)
		defer t.Stop()
		for range t.C {
			if os.Getppid() != ppid {
				logger.Warn("gateway process is gone; plugin exiting", "parent_pid", ppid)
				exit(1)
				return
			}
		}
	}()
}
