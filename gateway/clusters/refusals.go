package clusters

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/proxy"
)

// noClusterMessage is the one answer for a cluster that does not exist and
// for one the caller is not a member of, so names of other teams' clusters
// do not leak; it says what to do in either case.
func noClusterMessage(cluster string) string {
	return fmt.Sprintf("cluster %q not found, or you are not a member of it: check the cluster name in your kubeconfig's server URL, or ask a Berth admin to add you to the cluster's members", cluster)
}

// writeNoCluster refuses a proxied request for a cluster the caller cannot
// see: 404, as the management API answers, with the reason also in a
// Warning so kubectl prints it even during discovery.
func writeNoCluster(ctx *fasthttp.RequestCtx, cluster string) {
	proxy.WriteRefusal(ctx, fasthttp.StatusNotFound, noClusterMessage(cluster))
}

// writeAuthRefusal answers a proxied request whose credential was refused:
// 401 (or 403) with why, and, for a missing, expired or revoked
// credential, how to get a working one. kubectl replaces the message of a
// 401 Status on discovery with its own "You must be logged in to the
// server", so it goes in a Warning too.
func writeAuthRefusal(ctx *fasthttp.RequestCtx, cluster string, err error) {
	msg := "Unauthorized"
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind != fault.Internal {
		msg = fe.Message
	}
	if fault.Is(err, fault.Forbidden) {
		proxy.WriteRefusal(ctx, fasthttp.StatusForbidden, msg)
		return
	}
	proxy.WriteRefusal(ctx, fasthttp.StatusUnauthorized, fmt.Sprintf(
		"%s: download a new kubeconfig from Berth (POST /api/v1/clusters/%s/kubeconfig), or sign in again for a new token", msg, cluster))
}
