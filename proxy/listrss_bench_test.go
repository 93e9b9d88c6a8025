//go:build linux

package proxy

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkListRSS is issue 15.3's memory measurement: four concurrent
// list queries of a 60 MB collection (600 ConfigMaps of 100 KB, served in
// chunks of 500) through the proxy. It reports the process's peak RSS
// during the lists above the RSS before them (the peak is reset through
// /proc/self/clear_refs), how many lists got 429, and the budget's own
// peak. The backend's pre-built chunks are resident before the reset, so
// they are not in the figure; the backend's writes are.
//
//	go test -run '^$' -bench ListRSS -benchtime 3x ./proxy/
func BenchmarkListRSS(b *testing.B) {
	const items, per = 600, 500
	blob := strings.Repeat("a", 100<<10)
	var chunks [][]byte
	for from := 0; from < items; from += per {
		var buf bytes.Buffer
		next := ""
		if from+per < items {
			next = strconv.Itoa(from + per)
		}
		fmt.Fprintf(&buf, `{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"continue":%q},"items":[`, next)
		for i := from; i < min(from+per, items); i++ {
			if i > from {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"metadata":{"name":"big-%03d","namespace":"costly"},"data":{"blob":%q}}`, i, blob)
		}
		buf.WriteString("]}")
		chunks = append(chunks, buf.Bytes())
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if c := r.URL.Query().Get("continue"); c != "" {
			i = 1
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(chunks[i])
	}))
	srv.EnableHTTP2 = false
	srv.StartTLS()
	defer srv.Close()
	px, front := benchFront(b, srv, Options{MaxConcurrentLists: 4})
	url := front + "/proxy/clusters/dev/api/v1/namespaces/costly/configmaps?pageSize=10&sortOrder=desc"
	var peak, refused, ok float64
	for b.Loop() {
		base := rss(b, "VmRSS")
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Fatalf("resetting the peak RSS: %v", err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				defer mu.Unlock()
				switch resp.StatusCode {
				case 200:
					ok++
				case 429:
					refused++
				default:
					b.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		peak = max(peak, rss(b, "VmHWM")-base)
	}
	b.ReportMetric(peak/(1<<20), "peak-rss-MB")
	b.ReportMetric(ok/float64(b.N), "ok/op")
	b.ReportMetric(refused/float64(b.N), "429/op")
	b.ReportMetric(float64(budgetPeak(px))/(1<<20), "budget-peak-MB")
}

// benchFront serves a proxy to srv on a loopback port, as the gateway
// does, and returns it and its URL.
func benchFront(b *testing.B, srv *httptest.Server, opts Options) (*Proxy, string) {
	pool := NewPool(PoolOptions{})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := pool.Set(Cluster{Name: "dev", Server: srv.URL, CAData: caPEM, Token: "t"}); err != nil {
		b.Fatal(err)
	}
	opts.Pool = pool
	p := New(opts)
	fs := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			t, err := ParseTarget(ctx.RequestURI())
			if err != nil {
				WriteStatus(ctx, 400, err.Error())
				return
			}
			p.Serve(ctx, t, Identity{User: "u"})
		},
		StreamRequestBody: true,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go fs.Serve(ln)
	b.Cleanup(func() { fs.Shutdown() })
	return p, "http://" + ln.Addr().String()
}

// rss reads a /proc/self/status field in bytes.
func rss(b *testing.B, field string) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
