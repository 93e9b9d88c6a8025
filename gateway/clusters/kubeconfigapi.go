package clusters

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
)

// Kubeconfig is POST /api/v1/clusters/{name}/kubeconfig without a body: a
// kubeconfig that reaches the cluster through Berth with a fresh API key
// scoped to it, so `kubectl --kubeconfig file get pods` works at once. The
// key is shown only in this file. Asking again revokes the key of the
// kubeconfig made before for the same user and cluster: one kubeconfig
// key each, never a pile of them. Minting is a POST, so that no link or
// cross-site navigation can make a browser do it.
func (h *Handlers) Kubeconfig(ctx *fasthttp.RequestCtx) error {
	r, _, err := h.visible(ctx)
	if err != nil {
		return err
	}
	p := authn.PrincipalFrom(ctx)
	if p.Scoped() {
		// A scoped key must not mint keys: that would let it outlive or
		// widen its own scope.
		return fault.New(fault.Forbidden, "a scoped API key cannot create kubeconfigs")
	}
	base, err := h.server()
	if err != nil {
		// Why Berth does not know its own address, and who can fix it.
		return fault.New(fault.Conflict, "%s", err)
	}
	raw, err := h.replaceKubeconfigKey(ctx, p, r.Name)
	if err != nil {
		return err
	}
	out, err := ClientKubeconfig(r.Name, strings.TrimSuffix(base, "/")+"/proxy/clusters/"+r.Name, h.caPEM(), raw)
	if err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/yaml")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="`+r.Name+`.kubeconfig"`)
	ctx.SetBody(out)
	return nil
}

// replaceKubeconfigKey revokes the key of p's previous kubeconfig for
// cluster, if it still exists, mints the new one and records it. The old
// key goes first, so a cap on API keys per user never stands in the way
// of downloading again.
func (h *Handlers) replaceKubeconfigKey(ctx *fasthttp.RequestCtx, p *identity.Principal, cluster string) (string, error) {
	h.kubeconfigMu.Lock()
	defer h.kubeconfigMu.Unlock()
	prev, err := h.svc.mintedKubeconfigKey(cluster, p.UserID)
	if err != nil {
		return "", err
	}
	if prev != "" {
		if err := h.ids.RevokeAPIKey(ctx, p, prev, h.authn.Meta(ctx)); err != nil && !fault.Is(err, fault.NotFound) {
			return "", err
		}
	}
	scopes := []string{identity.ClusterScopePrefix + cluster, identity.PermClustersRead}
	key, raw, err := h.ids.CreateAPIKey(ctx, p, identity.NewAPIKey{
		Name: "kubeconfig " + cluster, Scopes: scopes, ExpiresAt: h.svc.opts.Now().Add(h.kubeconfigTTL),
	}, h.authn.Meta(ctx))
	if err != nil {
		return "", err
	}
	if err := h.svc.recordKubeconfigKey(cluster, p.UserID, key.ID); err != nil {
		return "", err
	}
	return raw, nil
}

// KubeconfigGet is GET /api/v1/clusters/{name}/kubeconfig, which minted a
// key on every call before: 405, saying to use POST.
func (h *Handlers) KubeconfigGet(ctx *fasthttp.RequestCtx) error {
	ctx.Response.Header.Set(fasthttp.HeaderAllow, fasthttp.MethodPost)
	return fault.New(fault.MethodNotAllowed,
		"a kubeconfig holds a new API key, so it is made by POST, not GET: POST /api/v1/clusters/%s/kubeconfig", name(ctx))
}
