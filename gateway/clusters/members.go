package clusters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// MemberExistsError refuses a grant for a subject that is already a
// member of the cluster, naming the grant to change instead.
type MemberExistsError struct {
	Member Member
}

func (e *MemberExistsError) Error() string {
	who := e.Member.Subject
	if e.Member.Name != "" {
		who = e.Member.Name
	}
	return fmt.Sprintf("%s %q is already a member of cluster %q with role %s: change the role with PUT /api/v1/clusters/%s/members/%s",
		e.Member.Kind, who, e.Member.Cluster, e.Member.Role, e.Member.Cluster, e.Member.ID)
}

// Unwrap is the refusal a caller sees: a conflict naming the grant.
func (e *MemberExistsError) Unwrap() error { return fault.New(fault.Conflict, "%s", e.Error()) }

// SetMemberRole changes the role of grant id on cluster. Streams opened
// under the old role end, since they assert it to the cluster.
func (s *Service) SetMemberRole(ctx context.Context, cluster, id, role string, ev audit.Event) (*Member, error) {
	if !slices.Contains(Roles, role) {
		return nil, fault.New(fault.Invalid, "role must be one of %s", strings.Join(Roles, ", "))
	}
	var out *Member
	err := s.db.Update(func(tx *store.Tx) error {
		if r, err := records.Get(tx, cluster); err != nil {
			return err
		} else if !r.Live() {
			return store.ErrNotFound
		}
		m, err := members.Get(tx, id)
		if err != nil {
			return err
		}
		if m.Cluster != cluster {
			return store.ErrNotFound
		}
		m.Role = role
		out = m
		return members.Put(tx, id, m)
	})
	s.record(ctx, ev, "cluster.member.update", cluster, err)
	s.refresh(cluster)
	s.membershipChanged()
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrMemberNotFound
	}
	return out, err
}

// ErrMemberNotFound: no such grant on the cluster (or no such cluster).
var ErrMemberNotFound = fault.New(fault.NotFound, "no such member of the cluster")
