package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// etcdCounts is a snapshot of the counters etcd keeps of the requests it
// served, read from its Prometheus endpoint: gRPC messages received per
// method (Range, Txn, Put, LeaseKeepAlive, Watch, …; one per unary call)
// and the MVCC layer's range, txn and put counts. The difference of two
// snapshots is what Berth asked of etcd in between.
type etcdCounts map[string]float64

var (
	grpcReceived = regexp.MustCompile(`^grpc_server_msg_received_total\{.*grpc_method="([A-Za-z]+)".*\} ([0-9.e+]+)$`)
	mvccCounter  = regexp.MustCompile(`^(etcd_mvcc_(?:range|txn|put|delete)_total) ([0-9.e+]+)$`)
)

// readEtcdCounts reads the counters from every member's /metrics and adds
// them up: a client may talk to any member.
func readEtcdCounts(ctx context.Context, endpoints []string) (etcdCounts, error) {
	out := etcdCounts{}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, ep := range endpoints {
		req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(ep, "/")+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("etcd metrics: %w", err)
		}
		err = parseEtcdCounts(resp.Body, out)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("etcd metrics: %w", err)
		}
	}
	return out, nil
}

func parseEtcdCounts(r io.Reader, into etcdCounts) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var name, value string
		if m := grpcReceived.FindStringSubmatch(line); m != nil {
			name, value = "grpc:"+m[1], m[2]
		} else if m := mvccCounter.FindStringSubmatch(line); m != nil {
			name, value = m[1], m[2]
		} else {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("%q: %w", line, err)
		}
		into[name] += v
	}
	return sc.Err()
}

// minus returns c − before, leaving out counters that did not move.
func (c etcdCounts) minus(before etcdCounts) etcdCounts {
	out := etcdCounts{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// String lists the counters in name order, e.g. "grpc:Range=9 etcd_mvcc_range_total=9".
func (c etcdCounts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, c[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
