package clusters

import (
	"log/slog"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
)

// Found by a red-team pass (fixed; the test guards it): on a replica cut off from etcd, new requests fail after
// identity.GrantStaleness (5 s), but an open stream (exec, port-forward,
// watch) is kept whenever its re-check meets a store error, with no bound:
// not even a credential that has EXPIRED ends it. Nor does a revocation or
// membership removal made on another replica reach it (the watch is down),
// and the periodic pass (RecheckInterval) also just meets the store error.
// So a member removed, or a key revoked, during an etcd partition keeps its
// open exec session on the cut-off replica for as long as the partition
// lasts. Proposed: fail closed after a bound — end the stream when the
// credential's own expiry has passed, and when the store has been
// unreachable (store.DB.Fresh false) for longer than GrantStaleness.
func TestStreamEndsOnExpiryWhileStoreDown(t *testing.T) {
	viewer := []Member{{Cluster: "c1", Kind: "user", Subject: "usr_ann", Role: "view"}}
	s := &Service{opts: Options{ImpersonatePrefix: "berth:", Now: time.Now}, log: slog.New(slog.DiscardHandler),
		cache: map[string]*cachedCluster{"c1": {members: viewer}}}
	p := &identity.Principal{UserID: "usr_ann", Username: "ann", Permissions: []string{identity.PermClustersRead},
		AuthMethod: identity.MethodAPIKey, CredentialID: "key_1", ExpiresAt: time.Now().Add(-time.Hour)}
	checkedAt := s.changes.current()
	role, _ := s.Access(p, "c1")
	was := s.Identity(p, role, "192.0.2.1", "req-1")
	storeDown := func() (*identity.Principal, error) {
		return nil, fault.New(fault.Unavailable, "the store is unavailable")
	}
	check := s.streamCheck(storeDown, p, "c1", was, checkedAt)
	s.changes.add(true) // the periodic pass
	if check() {
		t.Errorf("a stream whose credential expired an hour ago is kept while the store is unreachable")
	}
}
