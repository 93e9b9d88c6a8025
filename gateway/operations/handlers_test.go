package operations

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
	"github.com/berthgw/berth/gateway/store"
)

// The operations endpoints in-process: a plain user sees the operations
// of the clusters they may reach only, and every refusal answers with its
// status, code and message.
func TestOperationHandlers(t *testing.T) {
	e := apitest.New(t)
	svc := NewService(e.DB, Options{})
	h := NewHandlers(svc, e.Authn, e.Audit, func(_ *identity.Principal, cluster string) bool { return cluster == "mine" })
	read, write := identity.PermClustersRead, identity.PermClustersWrite
	e.Serve(t, []authn.Route{
		{Method: "GET", Path: "/api/v1/clusters/{name}/operations", Permission: read, Handler: h.ListForCluster},
		{Method: "GET", Path: "/api/v1/operations", Permission: read, Handler: h.List},
		{Method: "GET", Path: "/api/v1/operations/{id}", Permission: read, Handler: h.Get},
		{Method: "POST", Path: "/api/v1/operations/{id}/cancel", Permission: write, Handler: h.Cancel},
	})
	_, admin := e.User(t, "admin", identity.RoleAdmin)
	_, user := e.User(t, "dora")
	ops := map[string]*Operation{}
	for _, cluster := range []string{"mine", "theirs"} {
		op, err := New(Create, cluster, "local", "usr_x", nil)
		if err != nil {
			t.Fatal(err)
		}
		op.Status = Succeeded
		if err := e.DB.Update(func(tx *store.Tx) error { return Insert(tx, op) }); err != nil {
			t.Fatal(err)
		}
		ops[cluster] = op
	}
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code, msg                 string
	}{
		{"bad status", "GET", "/api/v1/operations?status=done", admin, 400, "invalid_request", "status must be one of"},
		{"bad type", "GET", "/api/v1/operations?type=resize", admin, 400, "invalid_request", "type must be one of"},
		{"bad page", "GET", "/api/v1/operations?page=0", admin, 400, "invalid_request", "page must be"},
		{"another team's cluster", "GET", "/api/v1/clusters/theirs/operations", user, 404, "not_found", "cluster not found"},
		{"another team's operation", "GET", "/api/v1/operations/" + ops["theirs"].ID, user, 404, "not_found", "operation not found"},
		{"no such operation", "GET", "/api/v1/operations/op_nope", admin, 404, "not_found", "operation not found"},
		{"finished", "POST", "/api/v1/operations/" + ops["mine"].ID + "/cancel", admin, 409, "conflict", "operation has already finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.Do(t, tc.method, tc.path, tc.token, nil)
			if status != tc.status || !strings.Contains(string(body), `"error":"`+tc.code+`"`) || !strings.Contains(string(body), tc.msg) {
				t.Fatalf("%d %s, want %d %s %q", status, body, tc.status, tc.code, tc.msg)
			}
		})
	}
	var list struct {
		Total int
		Items []Operation
	}
	json.Unmarshal(e.Must(t, 200, "GET", "/api/v1/operations", user, nil), &list)
	if list.Total != 1 || list.Items[0].Cluster != "mine" {
		t.Errorf("a plain user's list: %+v", list)
	}
	json.Unmarshal(e.Must(t, 200, "GET", "/api/v1/operations", admin, nil), &list)
	if list.Total != 2 {
		t.Errorf("a fleet admin's list: %+v", list)
	}
	if !e.HasEvent(t, "operation.cancel", "failure") {
		t.Error("the refused cancel is not audited")
	}
}

// A busy cluster is a conflict that names the operation in the way.
func TestBusyErrorIsAConflict(t *testing.T) {
	err := error(&BusyError{Operation: &Operation{ID: "op_1", Cluster: "prod", Type: Update, Status: Running}})
	var fe *fault.Error
	if !fault.Is(err, fault.Conflict) || !errors.As(err, &fe) || !strings.Contains(fe.Message, "op_1") {
		t.Errorf("busy: %#v", err)
	}
}
