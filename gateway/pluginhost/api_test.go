package pluginhost

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/sdk"
)

// serveAPI runs h on a request in process, as the router would, and
// returns the answer.
func serveAPI(h httpapi.Handler, uri, name string) (int, string) {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI(uri)
	if name != "" {
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		ctx.SetUserValue("name", name)
	}
	httpapi.Serve(nil, h)(&ctx)
	return ctx.Response.StatusCode(), string(ctx.Response.Body())
}

// TestHandlers: the API's answers, refusals included, one request each
// against a running host.
func TestHandlers(t *testing.T) {
	good := declare(t, "tp", testplugin, map[string]any{"label": "one"})
	var (
		mu        sync.Mutex
		plugins   = []Plugin{good}
		reloadErr error
	)
	th := newHost(t, testSettings(good), func(o *Options) {
		o.Reload = func() ([]Plugin, error) {
			mu.Lock()
			defer mu.Unlock()
			return plugins, reloadErr
		}
	})
	th.start(t)
	declareNow := func(p Plugin, err error) {
		mu.Lock()
		defer mu.Unlock()
		plugins, reloadErr = []Plugin{p}, err
	}
	withConfig := func(c map[string]any) Plugin {
		p := good
		p.Config = c
		return p
	}

	for _, tc := range []struct {
		name    string
		declare func()
		list    bool   // GET /api/v1/plugins rather than a reload
		uri     string // for list
		plugin  string // for reload
		status  int
		want    []string
		notWant []string
	}{
		{name: "list", list: true, uri: "/api/v1/plugins", status: 200,
			want: []string{`"total":1`, `"name":"tp"`, `"state":"running"`}, notWant: []string{"last_error"}},
		{name: "list, bad page size", list: true, uri: "/api/v1/plugins?page_size=x", status: 400,
			want: []string{`"error":"invalid_request"`}},
		{name: "reload of an unknown plugin", plugin: "ghost", status: 404,
			want: []string{`no plugin \"ghost\" in the configuration`}},
		{name: "reload with a configuration that does not load", plugin: "tp", status: 400,
			declare: func() {
				declareNow(good, fault.Wrap(fault.Invalid, errors.New("/etc/berth/berth.yaml: line 3"), "the configuration does not load: plugins: bad"))
			},
			want: []string{"the configuration does not load: plugins: bad"}, notWant: []string{"/etc/berth"}},
		{name: "reload refused by the schema", plugin: "tp", status: 400,
			declare: func() { declareNow(withConfig(map[string]any{"port": 0}), nil) },
			want:    []string{"field /port"}, notWant: []string{binDir}},
		{name: "list shows the refusal", list: true, uri: "/api/v1/plugins", status: 200,
			want: []string{`"state":"running"`, `"last_error":`}},
		{name: "reload in place", plugin: "tp", status: 200,
			declare: func() { declareNow(withConfig(map[string]any{"label": "two"}), nil) },
			want:    []string{`"state":"running"`}, notWant: []string{"last_error"}},
		{name: "list after a good reload shows no old error", list: true, uri: "/api/v1/plugins", status: 200,
			want: []string{`"state":"running"`}, notWant: []string{"last_error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.declare != nil {
				tc.declare()
			}
			var status int
			var body string
			if tc.list {
				status, body = serveAPI(th.HandleList, tc.uri, "")
			} else {
				status, body = serveAPI(th.HandleReload, "/api/v1/plugins/"+tc.plugin+"/reload", tc.plugin)
			}
			if status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %s: %s", w, body)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("body has %s: %s", w, body)
				}
			}
		})
	}
}

// TestClassify: plugin errors get the fault kind the API answers with, and
// keep their own text and SDK kind.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err      error
		kind     fault.Kind
		showsMsg bool
	}{
		{&unavailableError{Plugin: "p", State: StateDegraded}, fault.Unavailable, false},
		{errors.Join(errors.New("provider down"), sdkErr("retryable")), fault.Unavailable, false},
		{sdkErr("deadline"), fault.GatewayTimeout, false},
		{sdkErr("not found"), fault.NotFound, true},
		{sdkErr("invalid"), fault.Invalid, true},
		{sdkErr("exists"), fault.Conflict, true},
		{sdkErr("precondition"), fault.Conflict, true},
		{sdkErr("permission"), fault.BadGateway, false},
		{sdkErr("unimplemented"), fault.BadGateway, false},
		{errUnknownPlugin, fault.NotFound, false},
		{missing("p", "dns"), fault.Invalid, false},
		{errors.New("something else"), fault.Internal, false},
	} {
		got := classify(tc.err)
		if k := fault.KindOf(got); k != tc.kind {
			t.Errorf("%v: kind %v, want %v", tc.err, k, tc.kind)
		}
		if got.Error() != tc.err.Error() {
			t.Errorf("%v: text changed to %q", tc.err, got.Error())
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%v: the original is not in the chain", tc.err)
		}
		var fe *fault.Error
		if errors.As(got, &fe) && (fe.Message == tc.err.Error()) != tc.showsMsg {
			t.Errorf("%v: safe message %q (shows the plugin's: want %v)", tc.err, fe.Message, tc.showsMsg)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}

// sdkErr is a plugin's error of one SDK kind, as the client returns it.
func sdkErr(kind string) error {
	return fmt.Errorf("GetCluster %q: %w", "c1", map[string]error{
		"retryable": sdk.ErrRetryable, "deadline": sdk.ErrDeadline, "not found": sdk.ErrNotFound,
		"invalid": sdk.ErrInvalidArgument, "exists": sdk.ErrAlreadyExists, "precondition": sdk.ErrFailedPrecondition,
		"permission": sdk.ErrPermissionDenied, "unimplemented": sdk.ErrUnimplemented,
	}[kind])
}
