package rpc

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// QuietStop wraps the logger go-plugin serves with in test and debug mode.
// There go-plugin stops the server by closing its listener first, so the
// gRPC server's accept loop ends with "use of closed network connection",
// which go-plugin logs at ERROR although it is the expected way to stop.
// Once stopping is set, that one error is dropped; every other line passes.
func QuietStop(l hclog.Logger, stopping *atomic.Bool) hclog.Logger {
	return quietStop{Logger: l, stopping: stopping}
}

type quietStop struct {
	hclog.Logger
	stopping *atomic.Bool
}

func (q quietStop) Error(msg string, args ...any) {
	if q.stopping.Load() && closedListener(args) {
		return
	}
	q.Logger.Error(msg, args...)
}

func (q quietStop) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Error && q.stopping.Load() && closedListener(args) {
		return
	}
	q.Logger.Log(level, msg, args...)
}

func (q quietStop) Named(name string) hclog.Logger {
	return quietStop{Logger: q.Logger.Named(name), stopping: q.stopping}
}

func (q quietStop) With(args ...any) hclog.Logger {
	return quietStop{Logger: q.Logger.With(args...), stopping: q.stopping}
}

func (q quietStop) ResetNamed(name string) hclog.Logger {
	return quietStop{Logger: q.Logger.ResetNamed(name), stopping: q.stopping}
}

// closedListener reports an error argument that is net.ErrClosed (by
// value, or by its text once go-plugin has formatted it).
func closedListener(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
		if strings.Contains(fmt.Sprint(a), net.ErrClosed.Error()) {
			return true
		}
	}
	return false
}
