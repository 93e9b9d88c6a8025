package clusters

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/operations"
)

// Handlers are the /api/v1/clusters endpoints.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
	ids   *identity.Service
	// server is Berth's address for the kubeconfigs it hands out, from
	// configuration only (never the request's Host header), or why there
	// is none.
	server func() (string, error)
	// kubeconfigMu serialises minting, so that two downloads at once still
	// leave one key per user and cluster.
	kubeconfigMu sync.Mutex
	// caPEM is Berth's serving certificate when clients must trust it
	// explicitly (self-signed); nil otherwise.
	caPEM func() []byte
	// kubeconfigTTL is the lifetime of the API key in a downloaded
	// kubeconfig.
	kubeconfigTTL time.Duration
	// IngressTarget, when set, is a cluster's own name under the managed
	// DNS base domain ("" when there is none): the read-only
	// ingress_cname_target its owners point their hostnames at.
	IngressTarget func(cluster string) string
}

// NewHandlers wires the cluster API.
func NewHandlers(svc *Service, a *authn.Authenticator, ids *identity.Service, server func() (string, error), caPEM func() []byte, kubeconfigTTL time.Duration) *Handlers {
	return &Handlers{svc: svc, authn: a, ids: ids, server: server, caPEM: caPEM, kubeconfigTTL: kubeconfigTTL}
}

// View is a cluster as the API shows it: never its credentials.
type View struct {
	Name              string            `json:"name"`
	DisplayName       string            `json:"display_name,omitempty"`
	Description       string            `json:"description,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Server            string            `json:"server"`
	AuthType          string            `json:"auth_type"`
	ConnectionStatus  string            `json:"connection_status"`
	KubernetesVersion string            `json:"kubernetes_version,omitempty"`
	LastObservedAt    *time.Time        `json:"last_observed_at,omitempty"`
	LastError         string            `json:"last_error,omitempty"`
	// Permissions are what the gateway's identity in the cluster may do
	// that Berth needs, as last probed.
	Permissions *Permissions `json:"permissions,omitempty"`
	Role        string       `json:"role,omitempty"`
	// Status is the lifecycle status: provisioning, ready, error,
	// deleting (deleted clusters are not shown).
	Status string `json:"status"`
	// APIEndpoint is the cluster's own API server address (Server, under
	// the name consoles use).
	APIEndpoint string `json:"api_endpoint,omitempty"`
	// Provisioner, Resources and Operation are set for provisioned
	// clusters: the plugin, the asked-for CPU and memory of the control
	// plane and the workers, and the latest operation.
	Provisioner string         `json:"provisioner,omitempty"`
	Resources   *ResourcesView `json:"resources,omitempty"`
	Operation   string         `json:"operation,omitempty"`
	// IngressCNAMETarget is <cluster>.<base_domain> when Berth manages
	// DNS (docs/dns.md): where the cluster's hostnames point.
	IngressCNAMETarget string    `json:"ingress_cname_target,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// ResourcesView shows a provisioned cluster's shape as Kubernetes
// quantities.
type ResourcesView struct {
	KubernetesVersion string       `json:"kubernetes_version,omitempty"`
	ControlPlane      QuantityView `json:"control_plane"`
	Workers           QuantityView `json:"workers"`
}

// QuantityView is CPU and memory as Kubernetes quantities ("2", "500m",
// "4Gi").
type QuantityView struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

func quantities(r Resources) QuantityView {
	return QuantityView{CPU: cpuString(r.CPUMillicores), Memory: memString(r.MemoryBytes)}
}

func (h *Handlers) view(r *Record, role string) View {
	v := View{
		Name: r.Name, DisplayName: r.DisplayName, Description: r.Description, Labels: r.Labels,
		Server: r.Server, APIEndpoint: r.Server, AuthType: r.AuthType, ConnectionStatus: r.ConnectionStatus,
		KubernetesVersion: r.KubernetesVersion, LastObservedAt: r.LastObservedAt, LastError: r.LastError,
		Permissions: r.Permissions, Role: role, Status: r.LifecycleStatus(), Provisioner: r.Provisioner, Operation: r.Operation,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.Shape != nil {
		v.Resources = &ResourcesView{KubernetesVersion: r.Shape.KubernetesVersion,
			ControlPlane: quantities(r.Shape.ControlPlane), Workers: quantities(r.Shape.Workers)}
	}
	if h.IngressTarget != nil {
		v.IngressCNAMETarget = h.IngressTarget(r.Name)
	}
	return v
}

// request is the body of POST and PUT. Either kubeconfig (with an optional
// context) or server plus a credential.
type request struct {
	Name                     string            `json:"name"`
	DisplayName              string            `json:"display_name"`
	Description              string            `json:"description"`
	Labels                   map[string]string `json:"labels"`
	Kubeconfig               string            `json:"kubeconfig"`
	Context                  string            `json:"context"`
	Server                   string            `json:"server"`
	TLSServerName            string            `json:"tls_server_name"`
	CertificateAuthorityData string            `json:"certificate_authority_data"`
	Token                    string            `json:"token"`
	ClientCertificateData    string            `json:"client_certificate_data"`
	ClientKeyData            string            `json:"client_key_data"`
	// Provision asks a provisioner to make (POST) or reshape (PUT) the
	// cluster instead of registering an existing one.
	Provision *provisionRequest `json:"provision"`
}

// provisionRequest is the shape of a cluster to provision.
type provisionRequest struct {
	Provisioner       string            `json:"provisioner"`
	KubernetesVersion string            `json:"kubernetes_version"`
	ControlPlane      quantityRequest   `json:"control_plane"`
	Workers           quantityRequest   `json:"workers"`
	Options           map[string]string `json:"options"`
}

// quantityRequest is CPU and memory as Kubernetes quantities.
type quantityRequest struct {
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
}

func (q quantityRequest) parse(part string) (Resources, error) {
	var r Resources
	for _, f := range []struct {
		name, raw string
		set       func(resource.Quantity)
	}{
		{"cpu", q.CPU, func(v resource.Quantity) { r.CPUMillicores = v.MilliValue() }},
		{"memory", q.Memory, func(v resource.Quantity) { r.MemoryBytes = v.Value() }},
	} {
		if f.raw == "" {
			continue
		}
		v, err := resource.ParseQuantity(f.raw)
		if err != nil || v.Sign() < 0 {
			return r, fault.New(fault.Invalid, "provision.%s.%s: %q is not a quantity (e.g. \"2\", \"500m\", \"4Gi\")", part, f.name, f.raw)
		}
		f.set(v)
	}
	return r, nil
}

func (p *provisionRequest) shape() (Shape, error) {
	cp, err := p.ControlPlane.parse("control_plane")
	if err != nil {
		return Shape{}, err
	}
	w, err := p.Workers.parse("workers")
	if err != nil {
		return Shape{}, err
	}
	return Shape{KubernetesVersion: p.KubernetesVersion, ControlPlane: cp, Workers: w, Options: p.Options}, nil
}

// maxKubeconfig bounds the kubeconfig text a caller may send.
const maxKubeconfig = 256 << 10

func (req *request) connection() (*Connection, error) {
	direct := req.Server != "" || req.Token != "" || req.ClientCertificateData != "" || req.ClientKeyData != "" || req.CertificateAuthorityData != ""
	switch {
	case req.Kubeconfig != "" && direct:
		return nil, fault.New(fault.Invalid, "give a kubeconfig or server and credentials, not both")
	case len(req.Kubeconfig) > maxKubeconfig:
		return nil, fault.New(fault.Invalid, "kubeconfig is too large")
	case req.Kubeconfig != "":
		c, err := FromKubeconfig([]byte(req.Kubeconfig), req.Context)
		if err != nil {
			return nil, fault.New(fault.Invalid, "%s", err)
		}
		return c, nil
	case !direct:
		return nil, nil
	}
	c := &Connection{Server: req.Server, TLSServerName: req.TLSServerName, Token: req.Token}
	var err error
	if c.CAData, err = decodeB64("certificate_authority_data", req.CertificateAuthorityData); err != nil {
		return nil, err
	}
	if c.ClientCertData, err = decodeB64("client_certificate_data", req.ClientCertificateData); err != nil {
		return nil, err
	}
	if c.ClientKeyData, err = decodeB64("client_key_data", req.ClientKeyData); err != nil {
		return nil, err
	}
	return c, nil
}

func (h *Handlers) event(ctx *fasthttp.RequestCtx) audit.Event { return h.authn.AuditEvent(ctx) }

func name(ctx *fasthttp.RequestCtx) string {
	n, _ := ctx.UserValue("name").(string)
	return n
}

// visible returns the cluster named in the path and the caller's role on
// it; a cluster the caller may not see is ErrNotFound, as one that does
// not exist, so names of other teams' clusters do not leak.
func (h *Handlers) visible(ctx *fasthttp.RequestCtx) (*Record, string, error) {
	r, err := h.svc.Get(name(ctx))
	if err != nil {
		return nil, "", err
	}
	role, ok := h.svc.Access(authn.PrincipalFrom(ctx), r.Name)
	if !ok {
		return nil, "", ErrNotFound
	}
	return r, role, nil
}

// List is GET /api/v1/clusters: the clusters the caller may reach.
func (h *Handlers) List(ctx *fasthttp.RequestCtx) error {
	pg, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		return perr
	}
	p := authn.PrincipalFrom(ctx)
	items, total, err := h.svc.List(p, pg.Page, pg.PageSize)
	if err != nil {
		return err
	}
	views := make([]View, 0, len(items))
	for i := range items {
		role, _ := h.svc.Access(p, items[i].Name)
		views = append(views, h.view(&items[i], role))
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(views, total, pg))
	return nil
}

// Get is GET /api/v1/clusters/{name}.
func (h *Handlers) Get(ctx *fasthttp.RequestCtx) error {
	r, role, err := h.visible(ctx)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, h.view(r, role))
	return nil
}

// Create is POST /api/v1/clusters.
func (h *Handlers) Create(ctx *fasthttp.RequestCtx) error {
	var req request
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		return e
	}
	conn, err := req.connection()
	if err != nil {
		return err
	}
	if req.Provision != nil {
		if conn != nil {
			return fault.New(fault.Invalid, "give provision or a kubeconfig (or server and credentials), not both")
		}
		shape, err := req.Provision.shape()
		if err != nil {
			return err
		}
		op, err := h.svc.Provision(ctx, authn.PrincipalFrom(ctx), ProvisionSpec{
			Name: req.Name, DisplayName: req.DisplayName, Description: req.Description, Labels: req.Labels,
			Provisioner: req.Provision.Provisioner, Shape: shape,
		}, h.event(ctx))
		if err != nil {
			return err
		}
		writeOperation(ctx, op)
		return nil
	}
	r, err := h.svc.Register(ctx, authn.PrincipalFrom(ctx), Spec{Name: req.Name, DisplayName: req.DisplayName, Description: req.Description, Labels: req.Labels, Conn: conn}, h.event(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, h.view(h.probed(r), "cluster-admin"))
	return nil
}

// Update is PUT /api/v1/clusters/{name}; credentials change only when the
// body gives new ones.
func (h *Handlers) Update(ctx *fasthttp.RequestCtx) error {
	var req request
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		return e
	}
	if req.Name != "" && req.Name != name(ctx) {
		return fault.New(fault.Invalid, "a cluster cannot be renamed")
	}
	conn, err := req.connection()
	if err != nil {
		return err
	}
	var shape Shape
	if req.Provision != nil {
		if req.Provision.Provisioner != "" {
			return fault.New(fault.Invalid, "a cluster's provisioner cannot be changed")
		}
		if shape, err = req.Provision.shape(); err != nil {
			return err
		}
		if err := shape.validate(); err != nil {
			return err
		}
		// Refuse before changing anything else the body asks for.
		r, err := h.svc.Get(name(ctx))
		if err != nil {
			return err
		}
		if r.Provisioner == "" {
			return fault.New(fault.Invalid, "cluster %q was registered, not provisioned: Berth cannot change its shape", r.Name)
		}
	}
	r, err := h.svc.Update(ctx, Spec{Name: name(ctx), DisplayName: req.DisplayName, Description: req.Description, Labels: req.Labels, Conn: conn}, h.event(ctx))
	if err != nil {
		return err
	}
	if req.Provision != nil {
		op, err := h.svc.Reshape(ctx, authn.PrincipalFrom(ctx), r.Name, shape, h.event(ctx))
		if err != nil {
			return err
		}
		writeOperation(ctx, op)
		return nil
	}
	if conn != nil {
		r = h.probed(r)
	}
	role, _ := h.svc.Access(authn.PrincipalFrom(ctx), r.Name)
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, h.view(r, role))
	return nil
}

// probed checks a cluster whose connection was just given now, rather
// than at the next probe round, so the answer already says whether it is
// reachable and whether the gateway's identity may impersonate (RBACHint
// when not), and returns its record as stored after.
func (h *Handlers) probed(r *Record) *Record {
	if _, err := h.svc.Test(r.Name); err != nil {
		return r
	}
	if now, err := h.svc.Get(r.Name); err == nil {
		return now
	}
	return r
}

// Delete is DELETE /api/v1/clusters/{name}: 204 for a registered
// cluster, 202 with the delete operation for a provisioned one.
func (h *Handlers) Delete(ctx *fasthttp.RequestCtx) error {
	op, err := h.svc.Delete(ctx, authn.PrincipalFrom(ctx), name(ctx), h.event(ctx))
	if err != nil {
		return err
	}
	if op != nil {
		writeOperation(ctx, op)
		return nil
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// writeOperation answers 202 with an operation just started, and where to
// follow it.
func writeOperation(ctx *fasthttp.RequestCtx, op *operations.Operation) {
	ctx.Response.Header.Set("Location", "/api/v1/operations/"+op.ID)
	httpapi.WriteJSON(ctx, fasthttp.StatusAccepted, op)
}

// Test is POST /api/v1/clusters/{name}/test.
func (h *Handlers) Test(ctx *fasthttp.RequestCtx) error {
	if _, _, err := h.visible(ctx); err != nil {
		return err
	}
	res, err := h.svc.Test(name(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, res)
	return nil
}

// Members is GET /api/v1/clusters/{name}/members.
func (h *Handlers) Members(ctx *fasthttp.RequestCtx) error {
	ms, err := h.svc.Members(name(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(ms, len(ms), httpapi.Page{Page: 1, PageSize: max(len(ms), 1)}))
	return nil
}

// AddMember is POST /api/v1/clusters/{name}/members {user|group, role}:
// user is a username or a user id; a subject that is already a member is
// 409 (change a role with SetMemberRole).
func (h *Handlers) AddMember(ctx *fasthttp.RequestCtx) error {
	var req struct {
		User  string `json:"user"`
		Group string `json:"group"`
		Role  string `json:"role"`
	}
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		return e
	}
	kind, subject := "user", req.User
	switch {
	case req.User != "" && req.Group != "":
		return fault.New(fault.Invalid, "give a user or a group, not both")
	case req.Group != "":
		kind, subject = "group", req.Group
	case req.User == "":
		return fault.New(fault.Invalid, "give a user or a group")
	}
	m, err := h.svc.AddMember(ctx, name(ctx), kind, subject, req.Role, h.event(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, m)
	return nil
}

// SetMemberRole is PUT /api/v1/clusters/{name}/members/{id} {role}: id is
// the grant's id, as listed and as returned on creation.
func (h *Handlers) SetMemberRole(ctx *fasthttp.RequestCtx) error {
	var req struct {
		Role string `json:"role"`
	}
	if e := httpapi.DecodeJSON(ctx, &req); e != nil {
		return e
	}
	id, _ := ctx.UserValue("id").(string)
	m, err := h.svc.SetMemberRole(ctx, name(ctx), id, req.Role, h.event(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, m)
	return nil
}

// RemoveMember is DELETE /api/v1/clusters/{name}/members/{id}.
func (h *Handlers) RemoveMember(ctx *fasthttp.RequestCtx) error {
	id, _ := ctx.UserValue("id").(string)
	if err := h.svc.RemoveMember(ctx, name(ctx), id, h.event(ctx)); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}
