package middleware

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

func TestAccessLog(t *testing.T) {
	tests := []struct {
		name     string
		level    slog.Level
		uri      string
		clientIP func(*fasthttp.RequestCtx) string
		want     map[string]any // nil: no line at all
	}{
		{"fields", slog.LevelInfo, "/api/v1/clusters?page=2&token=s3cret", nil, map[string]any{
			"msg": "request", "level": "INFO", "request_id": "req-1", "method": "GET", "path": "/api/v1/clusters",
			"status": 418.0, "bytes": 5.0, "client": "192.0.2.7", "query": "page=2&token=REDACTED", "principal": "ann",
		}},
		{"forwarded client and its peer", slog.LevelInfo, "/healthz", func(*fasthttp.RequestCtx) string { return "198.51.100.9" },
			map[string]any{"client": "198.51.100.9", "peer": "192.0.2.7"}},
		{"quiet above info", slog.LevelWarn, "/healthz", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: tt.level}))
			h := AccessLog(log, tt.clientIP)(func(ctx *fasthttp.RequestCtx) {
				httpapi.SetPrincipal(ctx, "ann")
				ctx.SetStatusCode(418)
				ctx.SetBodyString("hello")
			})
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5000}, nil)
			ctx.Request.SetRequestURI(tt.uri)
			httpapi.SetRequestID(&ctx, "req-1")
			h(&ctx)
			if tt.want == nil {
				if out.Len() != 0 {
					t.Fatalf("logged %q", out.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(out.Bytes(), &line); err != nil {
				t.Fatalf("not one JSON line: %q", out.String())
			}
			for k, v := range tt.want {
				if line[k] != v {
					t.Errorf("%s = %v, want %v", k, line[k], v)
				}
			}
			if _, ok := line["duration_ms"].(float64); !ok {
				t.Errorf("no duration_ms in %v", line)
			}
			if _, ok := line["source"]; ok {
				t.Errorf("source location logged: %v", line)
			}
		})
	}
}
