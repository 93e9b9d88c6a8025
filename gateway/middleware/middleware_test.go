package middleware

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

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

func TestBufferBody(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	srv := &fasthttp.Server{
		Handler: BufferBody(32 << 10)(func(ctx *fasthttp.RequestCtx) {
			fmt.Fprintf(ctx, "got %d", len(ctx.PostBody()))
		}),
		StreamRequestBody: true,
	}
	go srv.Serve(ln)
	defer srv.Shutdown()

	tests := []struct {
		name    string
		head    string // request line and headers
		body    string
		code    int
		wantOut string
	}{
		{"small, declared", "Content-Length: 5", "hello", 200, "got 5"},
		{"larger than the server's 8 KiB pre-read", "Content-Length: 20000", strings.Repeat("a", 20000), 200, "got 20000"},
		{"chunked within the bound", "Transfer-Encoding: chunked", "4e20\r\n" + strings.Repeat("b", 20000) + "\r\n0\r\n\r\n", 200, "got 20000"},
		{"declared over the bound", "Content-Length: 40000", strings.Repeat("c", 9000), 413, "payload_too_large"},
		{"chunked over the bound", "Transfer-Encoding: chunked", "9c40\r\n" + strings.Repeat("d", 40000) + "\r\n0\r\n\r\n", 413, "payload_too_large"},
		{"no body", "Content-Length: 0", "", 200, "got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			go fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: t\r\n%s\r\n\r\n%s", tt.head, tt.body)
			var resp fasthttp.Response
			if err := resp.Read(bufio.NewReader(conn)); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tt.code || !strings.Contains(string(resp.Body()), tt.wantOut) {
				t.Errorf("%d %q, want %d %q", resp.StatusCode(), resp.Body(), tt.code, tt.wantOut)
			}
			if tt.code == 413 && !resp.ConnectionClose() {
				t.Error("connection kept open with the rest of the body unread")
			}
		})
	}
}
