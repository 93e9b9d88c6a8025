package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/berthgw/berth/sdk"
)

// portsPerCluster: etcd's client and peer listeners and the API server.
const portsPerCluster = 3

// ports are a cluster's listeners, all on 127.0.0.1.
type ports struct {
	EtcdClient int `json:"etcd_client"`
	EtcdPeer   int `json:"etcd_peer"`
	APIServer  int `json:"apiserver"`
}

func (p ports) list() []int { return []int{p.EtcdClient, p.EtcdPeer, p.APIServer} }

// allocatePorts picks portsPerCluster ports in [from, to] that no known
// cluster holds and that nothing listens on right now. Another program
// could still take one before etcd or the API server binds it; the
// process would then fail and be retried by its supervisor, and the
// operator sees why in the cluster's message.
func allocatePorts(from, to int, taken map[int]bool) (ports, error) {
	var got []int
	for p := from; p <= to && len(got) < portsPerCluster; p++ {
		if taken[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		got = append(got, p)
	}
	if len(got) < portsPerCluster {
		return ports{}, fmt.Errorf("no %d free ports left in %d-%d on 127.0.0.1: %w", portsPerCluster, from, to, sdk.ErrFailedPrecondition)
	}
	return ports{EtcdClient: got[0], EtcdPeer: got[1], APIServer: got[2]}, nil
}
