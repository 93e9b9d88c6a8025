package middleware

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

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

// TestAccessLineMatchesSlog holds the access log's own JSON encoding to
// what slog's JSON handler writes for the same record, byte for byte,
// hostile strings included: log readers see one format whichever path
// wrote the line.
func TestAccessLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 12, 7, 17, 9, 15, 123456789, time.FixedZone("x", 3600))
	hostile := []string{
		"", "plain", `quote " and \ backslash`, "line\nbreak\r\ttab", "\x00\x01\x1f\x7f",
		"<script>&amp;</script>", "\u2028\u2029", "caf\u00e9 \u65e5\u672c", "bad \xff\xfe utf8", "\xe2\x80", "emoji \U0001F600",
		`{"level":"ERROR","msg":"forged"}`, strings.Repeat("a", 300),
	}
	durations := []float64{0, 0.001, 0.123, 1, 12.5, 1234.567, 99999.999, 1e6}
	for i, s := range hostile {
		e := accessEntry{
			time: at, requestID: s, method: "GET", route: "/proxy/clusters/{name}/*", path: s,
			status: 200 + i, bytes: 1212 * i, durationMS: durations[i%len(durations)],
			client: "127.0.0.1", peer: s, query: s, principal: s, clientRequestID: s,
		}
		if i%3 == 0 {
			e.peer, e.query = "", ""
		}
		var want bytes.Buffer
		if err := slog.NewJSONHandler(&want, nil).Handle(context.Background(), e.record()); err != nil {
			t.Fatal(err)
		}
		if got := e.appendJSON(nil); string(got) != want.String() {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want.String())
		}
	}
	for _, d := range durations {
		e := accessEntry{time: at, durationMS: d}
		var want bytes.Buffer
		_ = slog.NewJSONHandler(&want, nil).Handle(context.Background(), e.record())
		if got := e.appendJSON(nil); string(got) != want.String() {
			t.Errorf("duration %v:\n got %s\nwant %s", d, got, want.String())
		}
	}
}

// TestAccessLogJSONWritesWhatSlogWould runs the middleware both ways over
// the same request and compares the lines, the time field aside.
func TestAccessLogJSONWritesWhatSlogWould(t *testing.T) {
	run := func(direct bool, level slog.Level) string {
		var out bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: level}))
		var w io.Writer
		if direct {
			w = &out
		}
		h := AccessLogJSON(log, w, func(*fasthttp.RequestCtx) string { return "198.51.100.9" })(func(ctx *fasthttp.RequestCtx) {
			httpapi.SetPrincipal(ctx, "ann")
			httpapi.SetClientRequestID(ctx, "abc")
			ctx.SetStatusCode(418)
			ctx.SetBodyString("hello")
		})
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5000}, nil)
		ctx.Request.SetRequestURI("/api/v1/clusters?page=2&tok%65n=s3cret")
		httpapi.SetRequestID(&ctx, "req-1")
		h(&ctx)
		line := out.String()
		if i := strings.Index(line, `"level"`); i > 0 {
			line = line[i:] // the time differs
		}
		return line
	}
	viaSlog, direct := run(false, slog.LevelInfo), run(true, slog.LevelInfo)
	if viaSlog == "" || !strings.Contains(direct, `"query":"page=2&tok%65n=REDACTED"`) {
		t.Fatalf("line %q", direct)
	}
	for _, field := range []string{`"status":418`, `"bytes":5`, `"client":"198.51.100.9"`, `"peer":"192.0.2.7"`, `"principal":"ann"`, `"client_request_id":"abc"`} {
		if !strings.Contains(direct, field) {
			t.Errorf("no %s in %s", field, direct)
		}
	}
	// duration_ms differs between runs; the rest must not.
	cut := func(s string) string {
		i := strings.Index(s, `"duration_ms":`)
		j := strings.Index(s, `,"client"`)
		return s[:i] + s[j:]
	}
	if cut(viaSlog) != cut(direct) {
		t.Errorf("through slog:\n%s\ndirect:\n%s", viaSlog, direct)
	}
	if got := run(true, slog.LevelWarn); got != "" {
		t.Errorf("logged above info: %q", got)
	}
}

func BenchmarkAccessLog(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := "slog"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			log := slog.New(slog.NewJSONHandler(io.Discard, nil))
			var w io.Writer
			if direct {
				w = io.Discard
			}
			h := AccessLogJSON(log, w, nil)(func(ctx *fasthttp.RequestCtx) {
				httpapi.SetPrincipal(ctx, "usr_0123456789abcdefghjk")
				ctx.SetStatusCode(200)
				ctx.SetBodyString("hello")
			})
			var ctx fasthttp.RequestCtx
			ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5000}, nil)
			ctx.Request.SetRequestURI("/proxy/clusters/bench/api/v1/namespaces/default")
			httpapi.SetRequestID(&ctx, "0123456789abcdef01234567")
			b.ReportAllocs()
			for b.Loop() {
				h(&ctx)
			}
		})
	}
}

// TestRedactQuery reads names at least as leniently as anything that may
// read them: the access log takes the query raw, so a name the old
// normalised form decoded (fasthttp keeps an invalid escape as it is) must
// not escape redaction for carrying one, nor a parameter behind ';', which
// some servers behind the service and pod proxy paths still split on.
func TestRedactQuery(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"", ""},
		{"page=2&limit=5", "page=2&limit=5"},
		{"page=2&token=s3cret", "page=2&token=REDACTED"},
		{"TOKEN=s3cret", "TOKEN=REDACTED"},
		{"tok%65n=s3cret", "tok%65n=REDACTED"},
		{"access+token=s3cret", "access+token=REDACTED"},
		{"token=s3cretA&token=s3cretB", "token=REDACTED&token=REDACTED"},
		{"token=", "token=REDACTED"},
		{"token=s3=cret&x=1", "token=REDACTED&x=1"},
		{"token", "token"},             // a name alone carries no value
		{"token%3Ds3cret", "REDACTED"}, // decodes to a pair
		{"a=1&token%3ds3cret&b=2", "a=1&REDACTED&b=2"},
		{"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2ln", "REDACTED"}, // a bare token
		{"pretty", "pretty"},
		{"%zztoken=s3cret", "%zztoken=REDACTED"},
		// An invalid escape left the old form readable (fasthttp decodes
		// "%74oken%zz" as "token%zz"); it must not hide the name now.
		{"%74oken%zz=s3cret", "%74oken%zz=REDACTED"},
		{"a=1&%74oken%=s3cret", "a=1&%74oken%=REDACTED"},
		{"%74oken%2=s3cret", "%74oken%2=REDACTED"},
		// Encoded twice, for a server that decodes twice.
		{"%2574oken=s3cret", "%2574oken=REDACTED"},
		// ';' as a separator.
		{"a=1;token=s3cret", "a=1;token=REDACTED"},
		{"token=s3cret;a=1&secretKey=x", "token=REDACTED;a=1&secretKey=REDACTED"},
		{"watch=1&resourceVersion=5", "watch=1&resourceVersion=5"},
	}
	for _, c := range cases {
		got := RedactQuery(c.raw)
		if got != c.want {
			t.Errorf("RedactQuery(%q) = %q, want %q", c.raw, got, c.want)
		}
		// Whatever fasthttp (Berth's own handlers) reads as a secret
		// parameter has its value gone from the line.
		var args fasthttp.Args
		args.Parse(c.raw)
		for k, v := range args.All() {
			if len(v) > 0 && secretParam(string(k)) && strings.Contains(got, string(v)) {
				t.Errorf("RedactQuery(%q) = %q still holds %s's value %q", c.raw, got, k, v)
			}
		}
	}
}

// TestRequestIDs: every request gets an id of 24 lower-case hex digits
// that no other request had, returned in X-Request-Id and never the
// client's own.
func TestRequestIDs(t *testing.T) {
	h := RequestID()(func(ctx *fasthttp.RequestCtx) {})
	seen := map[string]bool{}
	for range 20000 {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set(RequestIDHeader, "0123456789abcdef01234567")
		h(&ctx)
		id := string(ctx.Response.Header.Peek(RequestIDHeader))
		if len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("request id %q: want 24 lower-case hex digits", id)
		}
		if id != httpapi.RequestID(&ctx) || id == "0123456789abcdef01234567" {
			t.Fatalf("request id %q: the handler saw %q", id, httpapi.RequestID(&ctx))
		}
		if seen[id] {
			t.Fatalf("request id %q given twice", id)
		}
		seen[id] = true
	}
}
