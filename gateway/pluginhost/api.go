package pluginhost

import (
	"context"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/sdk"
)

// HandleList answers GET /api/v1/plugins: every plugin's status, paged,
// in configuration order.
func (h *Host) HandleList(ctx *fasthttp.RequestCtx) error {
	page, perr := httpapi.ParsePage(ctx)
	if perr != nil {
		return perr
	}
	all := h.List()
	start := min((page.Page-1)*page.PageSize, len(all))
	end := min(start+page.PageSize, len(all))
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(all[start:end], len(all), page))
	return nil
}

// HandleReload answers POST /api/v1/plugins/{name}/reload: it re-reads the
// plugin's declaration from the configuration and applies it (see
// Host.Reload), audits the act, and answers the plugin's status.
func (h *Host) HandleReload(ctx *fasthttp.RequestCtx) error {
	name, _ := ctx.UserValue("name").(string)
	// Not the request's context: fasthttp's is tied to the server, and a
	// reload that restarts the plugin must finish (or time out) as one.
	rctx, cancel := context.WithTimeout(context.Background(), h.opts.StartTimeout+h.opts.CallTimeout)
	defer cancel()
	st, err := h.Reload(rctx, name)
	ev := audit.Event{Action: "reload", ResourceID: name, Result: audit.ResultSuccess}
	if p := authn.PrincipalFrom(ctx); p != nil {
		ev.ActorID, ev.ActorName, ev.AuthMethod, ev.CredentialID = p.UserID, p.Username, p.AuthMethod, p.CredentialID
	}
	// Reloads of names that are not plugins are not audited: they changed
	// nothing and would let anyone with the permission fill the log.
	in, unknown := h.instance(name)
	msg := ""
	if err != nil && unknown == nil {
		msg = in.redact(err.Error())
		ev.Result, ev.Reason = audit.ResultFailure, "error"
		ev.Details = map[string]string{"error": msg}
	}
	if unknown == nil {
		h.recordAudit(ctx, ev)
	}
	if err != nil {
		if unknown != nil {
			msg = err.Error() // names no path: the plugin is not declared
		}
		h.log.Warn("plugin reload failed", "plugin", name, "err", msg)
		return reloadError(name, err)
	}
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, st)
	return nil
}

// reloadError explains a failed reload without internal paths: a
// configuration that does not load says why (Options.Reload classifies
// that), a refused config names its fields. The errors carry no cause:
// HandleReload has logged the failure, redacted.
func reloadError(name string, err error) error {
	var fe *fault.Error
	var cfgErr *configError
	switch {
	case errors.Is(err, errUnknownPlugin):
		return fault.New(fault.NotFound, "no plugin %q in the configuration", name)
	case errors.As(err, &fe):
		return fault.New(fe.Kind, "%s", fe.Message)
	case errors.As(err, &cfgErr):
		return fault.New(fault.Invalid, "%s", cfgErr.Error())
	case errors.Is(err, sdk.ErrInvalidConfig):
		return fault.New(fault.Invalid, "plugin %q refused its configuration", name)
	default:
		return fault.New(fault.Unavailable, "plugin %q did not start; GET /api/v1/plugins shows why", name)
	}
}
