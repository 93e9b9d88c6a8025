package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Proxy configures the Kubernetes proxy and the cluster registry.
type Proxy struct {
	ImpersonatePrefix  string   `yaml:"impersonate_prefix"`
	ImpersonateExtras  bool     `yaml:"impersonate_extras"`
	RequestTimeout     Duration `yaml:"request_timeout"`
	StreamWriteTimeout Duration `yaml:"stream_write_timeout"`
	MaxPageSize        int      `yaml:"max_page_size"`
	MaxListBytes       int64    `yaml:"max_list_bytes"`
	MaxListItems       int      `yaml:"max_list_items"`
	MaxConcurrentLists int      `yaml:"max_concurrent_lists"`
	ProbeInterval      Duration `yaml:"probe_interval"`
	KubeconfigTTL      Duration `yaml:"kubeconfig_ttl"`
	// StreamRecheckInterval is how often open streams read their access
	// from the store again although nothing was written.
	StreamRecheckInterval Duration `yaml:"stream_recheck_interval"`
	// MaxConnsPerCluster bounds the connections of a cluster's pool for
	// ordinary requests.
	MaxConnsPerCluster int `yaml:"max_conns_per_cluster"`
	// MaxStreamsPerCluster and MaxStreamsPerUser bound the watches, log
	// follows and exec/attach/port-forward sessions open on one cluster,
	// everyone's together and one user's (all their keys and sessions).
	MaxStreamsPerCluster int `yaml:"max_streams_per_cluster"`
	MaxStreamsPerUser    int `yaml:"max_streams_per_user"`

	// ListMemoryBudget bounds the bytes all post-processed lists hold at
	// once; a list that would overrun it gets 429 (413 if it alone needs
	// more). MaxListBytes bounds one list's bytes read, i.e. its work.
	ListMemoryBudget int64 `yaml:"list_memory_budget"`
	// ListTimeBudget bounds the time to fetch, filter and sort one list
	// (504 past it).
	ListTimeBudget Duration `yaml:"list_time_budget"`
}

func (p *Proxy) validate() error {
	if p.ImpersonatePrefix != "" && (strings.ContainsAny(p.ImpersonatePrefix, " \t\r\n,") || strings.HasPrefix(p.ImpersonatePrefix, "system:")) {
		return &Error{"proxy.impersonate_prefix", "must not contain white space or commas, nor start with system:"}
	}
	for _, d := range []struct {
		key string
		v   Duration
		min time.Duration
	}{
		{"proxy.request_timeout", p.RequestTimeout, time.Second},
		{"proxy.stream_write_timeout", p.StreamWriteTimeout, time.Second},
		{"proxy.probe_interval", p.ProbeInterval, time.Second},
		{"proxy.kubeconfig_ttl", p.KubeconfigTTL, time.Minute},
		{"proxy.stream_recheck_interval", p.StreamRecheckInterval, time.Second},
		{"proxy.list_time_budget", p.ListTimeBudget, 10 * time.Millisecond},
	} {
		if d.v.D() < d.min {
			return &Error{d.key, fmt.Sprintf("must be at least %s", d.min)}
		}
	}
	switch {
	case p.MaxPageSize < 1 || p.MaxPageSize > 100_000:
		return &Error{"proxy.max_page_size", "must be from 1 to 100000"}
	case p.MaxListBytes < 1<<20:
		return &Error{"proxy.max_list_bytes", "must be at least 1048576 (1 MiB)"}
	case p.MaxListItems < 1:
		return &Error{"proxy.max_list_items", "must be at least 1"}
	case p.MaxConcurrentLists < 1:
		return &Error{"proxy.max_concurrent_lists", "must be at least 1"}
	case p.MaxConnsPerCluster < 1 || p.MaxConnsPerCluster > 100_000:
		return &Error{"proxy.max_conns_per_cluster", "must be from 1 to 100000"}
	case p.MaxStreamsPerCluster < 1 || p.MaxStreamsPerCluster > 100_000:
		return &Error{"proxy.max_streams_per_cluster", "must be from 1 to 100000"}
	case p.MaxStreamsPerUser < 1 || p.MaxStreamsPerUser > p.MaxStreamsPerCluster:
		return &Error{"proxy.max_streams_per_user", "must be from 1 to proxy.max_streams_per_cluster"}
	case p.ListMemoryBudget < 1<<20:
		return &Error{"proxy.list_memory_budget", "must be at least 1048576 (1 MiB)"}
	}
	return nil
}

// checkPublicURL accepts "" or an absolute http(s) URL without query.
func checkPublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return &Error{"public_url", fmt.Sprintf("invalid URL %q (want e.g. https://edge.example.com)", s)}
	}
	return nil
}
