package clusters

import (
	"errors"
	"fmt"
	"slices"

	"github.com/berthgw/berth/proxy"
)

// ErrNoConnection means a live cluster has no connection to call yet: it
// is still being provisioned, or its credentials could not be loaded.
var ErrNoConnection = errors.New("no connection to the cluster (still provisioning, or its credentials could not be loaded)")

// Names returns every live (not deleted) cluster's name, sorted, from the
// in-memory cache (no store read), for background work that visits each
// cluster in turn. Some may have no connection yet (ErrNoConnection).
func (s *Service) Names() []string {
	s.mu.RLock()
	out := make([]string, 0, len(s.cache))
	for n := range s.cache {
		out = append(out, n)
	}
	s.mu.RUnlock()
	slices.Sort(out)
	return out
}

// SystemGet reads path from cluster name as the gateway itself, with its
// registered credential and no impersonation, for observations Berth makes
// on its own behalf (the node history) rather than for a caller. Only
// reads are offered: anything the gateway changes in a cluster goes
// through Call as a named principal (the person who asked, or for the
// break-glass sweep a named system principal), so the cluster's RBAC and
// audit log see who. The identity needs RBAC for what it reads
// (deploy/rbac).
func (s *Service) SystemGet(name, path string) (int, []byte, error) {
	if _, err := s.Get(name); err != nil {
		return 0, nil, err
	}
	if !s.pool.Has(name) {
		return 0, nil, fmt.Errorf("cluster %s: %w", name, ErrNoConnection)
	}
	return s.pool.Do(name, "GET", path, proxy.Identity{}, "", nil, s.opts.ProbeTimeout*3)
}

// ServerName returns the TLS server name that clients reaching cluster
// name directly must verify its certificate against, when the
// registration set one (tls_server_name), else "". Endpoint gives the URL
// and CA; this completes them for kubeconfigs that bypass Berth.
func (s *Service) ServerName(name string) (string, error) {
	r, err := s.Get(name)
	if err != nil {
		return "", err
	}
	c, err := s.open(r)
	if err != nil {
		return "", err
	}
	return c.TLSServerName, nil
}
