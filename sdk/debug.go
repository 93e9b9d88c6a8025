package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/berthgw/berth/sdk/internal/rpc"

	"github.com/hashicorp/go-plugin"
)

// ReattachInfo tells the gateway how to reach a plugin that is already
// running (started with -debug). It is go-plugin's ReattachConfig in a form
// that survives JSON.
type ReattachInfo struct {
	Protocol        string       `json:"protocol"`
	ProtocolVersion int          `json:"protocol_version"`
	Pid             int          `json:"pid"`
	Test            bool         `json:"test"`
	Addr            ReattachAddr `json:"addr"`
}

// ReattachAddr is a network address.
type ReattachAddr struct {
	Network string `json:"network"`
	Address string `json:"address"`
}

// NewReattachInfo converts go-plugin's reattach configuration.
func NewReattachInfo(rc *plugin.ReattachConfig) ReattachInfo {
	info := ReattachInfo{Protocol: string(rc.Protocol), ProtocolVersion: rc.ProtocolVersion, Pid: rc.Pid, Test: rc.Test}
	if rc.Addr != nil {
		info.Addr = ReattachAddr{Network: rc.Addr.Network(), Address: rc.Addr.String()}
	}
	return info
}

// Config converts the info back into go-plugin's reattach configuration.
func (r ReattachInfo) Config() (*plugin.ReattachConfig, error) {
	var addr net.Addr
	var err error
	switch r.Addr.Network {
	case "unix":
		addr, err = net.ResolveUnixAddr("unix", r.Addr.Address)
	case "tcp":
		addr, err = net.ResolveTCPAddr("tcp", r.Addr.Address)
	default:
		err = fmt.Errorf("unknown network %q", r.Addr.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("reattach address: %w", err)
	}
	if r.Pid <= 0 {
		return nil, errors.New("reattach: pid is required")
	}
	return &plugin.ReattachConfig{
		Protocol:        plugin.Protocol(r.Protocol),
		ProtocolVersion: r.ProtocolVersion,
		Addr:            addr,
		Pid:             r.Pid,
		Test:            r.Test,
	}, nil
}

func debugRequested(args []string, getenv func(string) string) bool {
	for _, a := range args {
		if a == "-debug" || a == "--debug" {
			return true
		}
	}
	on, _ := strconv.ParseBool(getenv(EnvDebug))
	return on
}

// serveDebug serves in go-plugin's test mode: no handshake on stdout, no
// cookie check, a listener the gateway reattaches to. It prints the
// reattach configuration and serves until interrupted.
func serveDebug(ctx context.Context, cfg *plugin.ServeConfig, name string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	reattachCh := make(chan *plugin.ReattachConfig, 1)
	closeCh := make(chan struct{})
	var stopping atomic.Bool
	context.AfterFunc(ctx, func() { stopping.Store(true) })
	cfg.Logger = rpc.QuietStop(cfg.Logger, &stopping)
	cfg.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattachCh, CloseCh: closeCh}
	go plugin.Serve(cfg)

	select {
	case rc := <-reattachCh:
		line, err := json.Marshal(map[string]ReattachInfo{name: NewReattachInfo(rc)})
		if err != nil {
			return fmt.Errorf("encode reattach config: %w", err)
		}
		fmt.Fprintf(out, "Berth plugin %q is running in debug mode (pid %d).\n"+
			"Start the gateway with this in its environment to use it:\n\n"+
			"\t%s='%s'\n\n"+
			"Stop the plugin with Ctrl-C.\n", name, os.Getpid(), EnvReattach, line)
	case <-closeCh:
		return errors.New("debug mode: the plugin server stopped before it was ready")
	}
	<-closeCh
	return nil
}
