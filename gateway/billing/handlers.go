package billing

import (
	"errors"
	"net/http"
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
)

// Handlers are the /api/v1/billing endpoints.
type Handlers struct {
	svc   *Service
	authn *authn.Authenticator
	audit *audit.Log
}

// NewHandlers wires the billing API.
func NewHandlers(svc *Service, a *authn.Authenticator, au *audit.Log) *Handlers {
	return &Handlers{svc: svc, authn: a, audit: au}
}

// Routes is billing's block of the gateway's route table.
func Routes(h *Handlers) []authn.Route {
	const (
		get, post, put, del = fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete
		signedIn, admin     = authn.SignedIn, PermAdmin
	)
	return []authn.Route{
		{Method: get, Path: "/api/v1/billing/plans", Permission: signedIn, Handler: h.ListPlans},
		{Method: post, Path: "/api/v1/billing/plans", Permission: admin, Handler: h.CreatePlan},
		{Method: get, Path: "/api/v1/billing/plans/{id}", Permission: signedIn, Handler: h.GetPlan},
		{Method: put, Path: "/api/v1/billing/plans/{id}", Permission: admin, Handler: h.UpdatePlan},
		{Method: del, Path: "/api/v1/billing/plans/{id}", Permission: admin, Handler: h.DeletePlan},
		{Method: post, Path: "/api/v1/billing/orders", Permission: signedIn, Handler: h.CreateOrder},
		{Method: get, Path: "/api/v1/billing/orders", Permission: signedIn, Handler: h.ListOrders},
		{Method: get, Path: "/api/v1/billing/orders/{id}", Permission: signedIn, Handler: h.GetOrder},
		{Method: post, Path: "/api/v1/billing/orders/{id}/cancel", Permission: signedIn, Handler: h.CancelOrder},
		{Method: post, Path: "/api/v1/billing/orders/{id}/pay", Permission: admin, Handler: h.PayOrder},
		{Method: get, Path: "/api/v1/billing/entitlement", Permission: signedIn, Handler: h.GetEntitlement},
		{Method: post, Path: "/api/v1/billing/orders/{id}/checkout", Permission: signedIn, Handler: h.Checkout},
		{Method: post, Path: "/api/v1/billing/portal", Permission: signedIn, Handler: h.Portal},
		{Method: get, Path: "/api/v1/billing/invoices", Permission: signedIn, Handler: h.Invoices},
		{Method: get, Path: "/api/v1/billing/settings", Permission: admin, Handler: h.GetSettings},
		{Method: put, Path: "/api/v1/billing/settings", Permission: admin, Handler: h.PutSettings},
		// The provider calls this; the plugin verifies its signature.
		{Method: post, Path: "/api/v1/billing/webhooks/stripe", Permission: authn.Public, Handler: h.Webhook},
	}
}

func pathValue(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// isAdmin: billing:admin, not narrowed by a scoped key.
func isAdmin(p *identity.Principal) bool { return p.Can(PermAdmin) && !p.Scoped() }

// unscoped refuses a scoped API key (a kubeconfig's cluster:<name> key, a
// CI key) the user's own billing actions: such a key is narrower than its
// owner and travels with a file, and ordering, canceling, paying, the
// provider's portal (which cancels the subscription and changes the card)
// and the invoices (the billing address) are the owner's own business.
func unscoped(ctx *fasthttp.RequestCtx) error {
	if authn.PrincipalFrom(ctx).Scoped() {
		return fault.New(fault.Forbidden, "a scoped API key cannot act on billing; sign in")
	}
	return nil
}

// record audits a change to plans or orders.
func (h *Handlers) record(ctx *fasthttp.RequestCtx, action, kind, id string, details map[string]string, err error) {
	ev := h.authn.ChangeEvent(ctx, action, kind, id, err)
	ev.Details = details
	h.audit.Record(ctx, ev)
}

// ListPlans is GET /api/v1/billing/plans: plans on sale; admins add
// ?archived=true for the archived ones too.
func (h *Handlers) ListPlans(ctx *fasthttp.RequestCtx) error {
	all := string(ctx.QueryArgs().Peek("archived")) == "true" && isAdmin(authn.PrincipalFrom(ctx))
	ps, err := h.svc.Plans(all)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": ps})
	return nil
}

// GetPlan is GET /api/v1/billing/plans/{id}.
func (h *Handlers) GetPlan(ctx *fasthttp.RequestCtx) error {
	p, err := h.svc.Plan(pathValue(ctx, "id"))
	if err != nil {
		return err
	}
	if p.Archived && !isAdmin(authn.PrincipalFrom(ctx)) {
		return ErrPlanNotFound
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, p)
	return nil
}

// CreatePlan is POST /api/v1/billing/plans.
func (h *Handlers) CreatePlan(ctx *fasthttp.RequestCtx) error {
	var in PlanInput
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	p, err := h.svc.SavePlan("", in)
	id := in.Name
	if p != nil {
		id = p.ID
	}
	h.record(ctx, "billing.plan.create", "billing_plan", id, nil, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, p)
	return nil
}

// UpdatePlan is PUT /api/v1/billing/plans/{id}.
func (h *Handlers) UpdatePlan(ctx *fasthttp.RequestCtx) error {
	var in PlanInput
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	id := pathValue(ctx, "id")
	p, err := h.svc.SavePlan(id, in)
	h.record(ctx, "billing.plan.update", "billing_plan", id, nil, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, p)
	return nil
}

// DeletePlan is DELETE /api/v1/billing/plans/{id}: 204 when removed, 200
// with the plan when someone holds it and it was archived instead.
func (h *Handlers) DeletePlan(ctx *fasthttp.RequestCtx) error {
	id := pathValue(ctx, "id")
	archived, err := h.svc.DeletePlan(id)
	h.record(ctx, "billing.plan.delete", "billing_plan", id, map[string]string{"archived": map[bool]string{true: "true", false: "false"}[archived]}, err)
	if err != nil {
		return err
	}
	if !archived {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return nil
	}
	p, err := h.svc.Plan(id)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, p)
	return nil
}

// CreateOrder is POST /api/v1/billing/orders {plan_id}.
func (h *Handlers) CreateOrder(ctx *fasthttp.RequestCtx) error {
	if err := unscoped(ctx); err != nil {
		return err
	}
	var in struct {
		PlanID string `json:"plan_id"`
	}
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	if in.PlanID == "" {
		return fault.New(fault.Invalid, "plan_id is required")
	}
	o, err := h.svc.CreateOrder(authn.PrincipalFrom(ctx).UserID, in.PlanID)
	id := ""
	if o != nil {
		id = o.ID
	}
	h.record(ctx, "billing.order.create", "billing_order", id, map[string]string{"plan": in.PlanID}, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusCreated, o)
	return nil
}

// owner is "" for an admin (every order), else the caller's id.
func owner(ctx *fasthttp.RequestCtx) string {
	p := authn.PrincipalFrom(ctx)
	if isAdmin(p) {
		return ""
	}
	return p.UserID
}

// ListOrders is GET /api/v1/billing/orders?status=&plan_id=&user_id=: the
// caller's own; admins every user's.
func (h *Handlers) ListOrders(ctx *fasthttp.RequestCtx) error {
	pg, err := httpapi.ParsePage(ctx)
	if err != nil {
		return err
	}
	args := ctx.QueryArgs()
	f := OrderFilter{Status: string(args.Peek("status")), PlanID: string(args.Peek("plan_id")), UserID: string(args.Peek("user_id"))}
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		return fault.New(fault.Invalid, "status must be one of pending, paid, canceled, expired")
	}
	if who := owner(ctx); who != "" {
		if f.UserID != "" && f.UserID != who {
			return fault.New(fault.Forbidden, "you may list only your own orders")
		}
		f.UserID = who
	}
	items, total, err := h.svc.Orders(f, pg.Page, pg.PageSize)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(items, total, pg))
	return nil
}

// GetOrder is GET /api/v1/billing/orders/{id}.
func (h *Handlers) GetOrder(ctx *fasthttp.RequestCtx) error {
	o, err := h.svc.Order(pathValue(ctx, "id"), owner(ctx))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, o)
	return nil
}

// CancelOrder is POST /api/v1/billing/orders/{id}/cancel: one's own
// pending order, or any for an admin.
func (h *Handlers) CancelOrder(ctx *fasthttp.RequestCtx) error {
	if err := unscoped(ctx); err != nil {
		return err
	}
	id := pathValue(ctx, "id")
	o, err := h.svc.Cancel(id, owner(ctx))
	h.record(ctx, "billing.order.cancel", "billing_order", id, nil, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, o)
	return nil
}

// PayOrder is POST /api/v1/billing/orders/{id}/pay {reason}: an admin
// marks a pending order paid by hand (a bank transfer, a credit).
func (h *Handlers) PayOrder(ctx *fasthttp.RequestCtx) error {
	var in struct {
		Reason string `json:"reason"`
	}
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	id := pathValue(ctx, "id")
	o, err := h.svc.MarkPaid(id, authn.PrincipalFrom(ctx).UserID, in.Reason)
	h.record(ctx, "billing.order.pay", "billing_order", id, map[string]string{"reason": in.Reason}, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, o)
	return nil
}

// EntitlementView is what GET /api/v1/billing/entitlement answers.
type EntitlementView struct {
	Active      bool         `json:"active"`
	Entitlement *Entitlement `json:"entitlement,omitempty"`
	// Limits are the quotas in force for the caller: the plan's over the
	// configured default (which also fills what the plan leaves out).
	Limits Entitlements `json:"limits"`
	Used   Usage        `json:"used"`
}

// Usage is what the caller's clusters hold against the quota.
type Usage struct {
	Clusters      int   `json:"clusters"`
	CPUMillicores int64 `json:"cpu_millicores"`
	MemoryBytes   int64 `json:"memory_bytes"`
}

// GetEntitlement is GET /api/v1/billing/entitlement.
func (h *Handlers) GetEntitlement(ctx *fasthttp.RequestCtx) error {
	user := authn.PrincipalFrom(ctx).UserID
	e, ok, err := h.svc.Entitlement(user)
	if err != nil {
		return err
	}
	v := EntitlementView{Active: ok, Limits: h.svc.opts.DefaultLimits}
	if ok {
		v.Entitlement, v.Limits = e, e.Limits.Or(h.svc.opts.DefaultLimits)
	}
	if h.svc.opts.Usage != nil {
		if v.Used, err = h.svc.opts.Usage(user); err != nil {
			return err
		}
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, v)
	return nil
}

// Checkout is POST /api/v1/billing/orders/{id}/checkout → {checkout_url}.
func (h *Handlers) Checkout(ctx *fasthttp.RequestCtx) error {
	if err := unscoped(ctx); err != nil {
		return err
	}
	p := authn.PrincipalFrom(ctx)
	id := pathValue(ctx, "id")
	url, err := h.svc.Checkout(ctx, id, p.UserID, h.svc.opts.Email(p.UserID))
	h.record(ctx, "billing.order.checkout", "billing_order", id, nil, err)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"checkout_url": url})
	return nil
}

// GetSettings is GET /api/v1/billing/settings: secrets as *_configured.
func (h *Handlers) GetSettings(ctx *fasthttp.RequestCtx) error {
	v, err := h.svc.SettingsView()
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, v)
	return nil
}

// PutSettings is PUT /api/v1/billing/settings {secret_key, webhook_secret, …}.
func (h *Handlers) PutSettings(ctx *fasthttp.RequestCtx) error {
	var in map[string]string
	if err := httpapi.DecodeJSON(ctx, &in); err != nil {
		return err
	}
	err := h.svc.SaveSettings(ctx, in)
	h.record(ctx, "billing.settings.update", "billing_settings", "provider", nil, err)
	if err != nil {
		return err
	}
	return h.GetSettings(ctx)
}

// Webhook is POST /api/v1/billing/webhooks/stripe: the body goes to the
// plugin exactly as it arrived. A refusal (bad signature, an event that
// does not match its order) is a 400, audited when the event verified; a
// replay is a 200.
func (h *Handlers) Webhook(ctx *fasthttp.RequestCtx) error {
	header := http.Header{}
	for k, v := range ctx.Request.Header.All() {
		header.Add(string(k), string(v))
	}
	body := append([]byte(nil), ctx.PostBody()...)
	n, err := h.svc.Webhook(ctx, header, body)
	if errors.Is(err, ErrMismatch) {
		// Only a verified event is audited: anyone can post here, and
		// recording every unverified attempt let an anonymous flood fill
		// the audit log (and push real events out of a bounded one).
		err = fault.Wrap(fault.Invalid, err, "the event does not match the order it names")
		h.record(ctx, "billing.webhook", "billing_webhook", "stripe", map[string]string{"refused": fault.KindOf(err).String()}, err)
	}
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]int{"applied": n})
	return nil
}

// Portal is POST /api/v1/billing/portal → {portal_url}.
func (h *Handlers) Portal(ctx *fasthttp.RequestCtx) error {
	if err := unscoped(ctx); err != nil {
		return err
	}
	url, err := h.svc.Portal(ctx, authn.PrincipalFrom(ctx).UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]string{"portal_url": url})
	return nil
}

// InvoiceView is one invoice as the API shows it.
type InvoiceView struct {
	ID             string `json:"id"`
	Number         string `json:"number,omitempty"`
	Status         string `json:"status"`
	AmountDue      int64  `json:"amount_due"`
	AmountPaid     int64  `json:"amount_paid"`
	Currency       string `json:"currency"`
	HostedURL      string `json:"hosted_url,omitempty"`
	PDFURL         string `json:"pdf_url,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
	Created        string `json:"created"`
}

// Invoices is GET /api/v1/billing/invoices: the caller's, newest first.
func (h *Handlers) Invoices(ctx *fasthttp.RequestCtx) error {
	if err := unscoped(ctx); err != nil {
		return err
	}
	ins, err := h.svc.Invoices(ctx, authn.PrincipalFrom(ctx).UserID, 50)
	if err != nil {
		return err
	}
	out := make([]InvoiceView, 0, len(ins))
	for _, in := range ins {
		out = append(out, InvoiceView{ID: in.ID, Number: in.Number, Status: in.Status, AmountDue: in.AmountDueMinor, AmountPaid: in.AmountPaidMinor,
			Currency: in.Currency, HostedURL: in.HostedURL, PDFURL: in.PDFURL, SubscriptionID: in.SubscriptionID, Created: formatTime(in.Created)})
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"items": out})
	return nil
}
