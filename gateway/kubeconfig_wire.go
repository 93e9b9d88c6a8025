package gateway

import (
	"errors"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// kubeconfigServer is Berth's address in the kubeconfigs it hands out
// (kubeconfigServerFor).
func (g *Gateway) kubeconfigServer() (string, error) {
	return kubeconfigServerFor(g.cfg.PublicURL, g.HTTPSAddr())
}

// kubeconfigServerFor is publicURL, else the HTTPS listener's own address
// httpsAddr when it is one a client can dial. Never the request's Host
// header: the client chooses it, and a kubeconfig written with
// `Host: evil.example` would send its bearer token there.
func kubeconfigServerFor(publicURL, httpsAddr string) (string, error) {
	if publicURL != "" {
		return publicURL, nil
	}
	if httpsAddr == "" {
		return "", errors.New("Berth has no HTTPS listener and no public_url: an administrator must set public_url (BERTH_PUBLIC_URL) to the https:// address clients reach Berth at")
	}
	host, port, err := net.SplitHostPort(httpsAddr)
	if err != nil {
		return "", errors.New("the HTTPS listener's address is unusable: an administrator must set public_url (BERTH_PUBLIC_URL)")
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return "", errors.New("Berth listens on every interface and does not know which address clients reach it at: an administrator must set public_url (BERTH_PUBLIC_URL), e.g. https://berth.example.com")
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// kubeconfigRoutes are the two ways to ask for a kubeconfig by POST: no
// body for one that goes through Berth; a body with the caller's password
// for a break-glass one that reaches the cluster directly, whose password
// check is limited per client address like sign-in. GET answers 405.
func (g *Gateway) kubeconfigRoutes() []authn.Route {
	const path = "/api/v1/clusters/{name}/kubeconfig"
	post := func(ctx *fasthttp.RequestCtx) error {
		if len(ctx.Request.Body()) == 0 {
			return g.clusterAPI.Kubeconfig(ctx)
		}
		if err := g.authn.Limit(ratelimit.ScopeAuth, g.authn.AddrKey(ctx)); err != nil {
			return err
		}
		return g.fleetOps.breakGlass.AdminKubeconfig(ctx)
	}
	return []authn.Route{
		{Method: fasthttp.MethodPost, Path: path, Permission: identity.PermClustersRead, Handler: post},
		{Method: fasthttp.MethodGet, Path: path, Permission: authn.Public, Handler: g.clusterAPI.KubeconfigGet},
		{Method: fasthttp.MethodGet, Path: "/ca.crt", Permission: authn.Public, Handler: g.serveCA},
	}
}

// serveCA is GET /ca.crt: the certificate clients must trust to reach
// Berth over HTTPS when it is self-signed, as PEM, at a stable address
// for scripts (curl -k once, then verify everything else with it). With a
// certificate from a public CA or from files there is nothing to add, and
// the answer is 404 saying so.
func (g *Gateway) serveCA(ctx *fasthttp.RequestCtx) error {
	pem := g.CertificatePEM()
	if len(pem) == 0 {
		return fault.New(fault.NotFound, "Berth's HTTPS certificate is not self-signed: clients verify it with the CAs they already trust")
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/x-pem-file")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="berth-ca.crt"`)
	ctx.SetBody(pem)
	return nil
}
