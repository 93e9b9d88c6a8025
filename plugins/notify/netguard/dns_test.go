package netguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// zone answers A and AAAA queries from a table and counts them. A name's
// answers are a sequence: the nth query of a type gets the nth answer set,
// the last one repeating, all with TTL 0 as a rebinding attacker sends.
type zone struct {
	records map[string]map[uint16][][]string // name -> type -> answer sets

	mu      sync.Mutex
	queries map[string]int // "name type" -> count
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	q := r.Question[0]
	types, ok := z.records[q.Name]
	if !ok {
		m.SetRcode(r, dns.RcodeNameError)
		w.WriteMsg(m)
		return
	}
	key := q.Name + " " + dns.TypeToString[q.Qtype]
	z.mu.Lock()
	n := z.queries[key]
	z.queries[key]++
	z.mu.Unlock()
	if sets := types[q.Qtype]; len(sets) > 0 {
		for _, addr := range sets[min(n, len(sets)-1)] {
			rr, err := dns.NewRR(fmt.Sprintf("%s 0 IN %s %s", q.Name, dns.TypeToString[q.Qtype], addr))
			if err != nil {
				panic(err)
			}
			m.Answer = append(m.Answer, rr)
		}
	}
	w.WriteMsg(m)
}

func (z *zone) count(name string, qtype uint16) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.queries[name+" "+dns.TypeToString[qtype]]
}

const public = "93.184.216.34"

// startDNS serves a fresh zone on a random UDP port of 127.0.0.1 and
// returns it with a resolver that asks only that server.
func startDNS(t *testing.T) (*zone, *net.Resolver) {
	t.Helper()
	a := func(sets ...[]string) map[uint16][][]string { return map[uint16][][]string{dns.TypeA: sets} }
	aaaa := func(sets ...[]string) map[uint16][][]string { return map[uint16][][]string{dns.TypeAAAA: sets} }
	z := &zone{
		queries: map[string]int{},
		records: map[string]map[uint16][][]string{
			"public.test.":   {dns.TypeA: {{public}}, dns.TypeAAAA: {{"2606:4700::1111"}}},
			"loopback.test.": a([]string{"127.0.0.1"}),
			"mixed.test.":    a([]string{public, "10.0.0.1"}),
			"metadata.test.": a([]string{"169.254.169.254"}),
			"cgnat.test.":    a([]string{"100.64.0.1"}),
			"v6loop.test.":   aaaa([]string{"::1"}),
			"mapped.test.":   aaaa([]string{"::ffff:127.0.0.1"}),
			"nat64.test.":    aaaa([]string{"64:ff9b::a9fe:a9fe"}),
			"mixed6.test.":   {dns.TypeA: {{public}}, dns.TypeAAAA: {{"fd00:ec2::254"}}},
			"rebind.test.":   a([]string{public}, []string{"127.0.0.1"}),
			"receiver.test.": a([]string{"127.0.0.1"}),
		},
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })

	server := pc.LocalAddr().String()
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", server)
		},
	}
	return z, r
}

func TestCheckURLResolvesNames(t *testing.T) {
	_, r := startDNS(t)
	g := Guard{Resolver: r}
	for _, name := range []string{"loopback.test", "mixed.test", "metadata.test", "cgnat.test", "v6loop.test", "mapped.test", "nat64.test", "mixed6.test", "Loopback.Test."} {
		raw := "https://" + name + "/hook"
		if u, err := g.CheckURL(t.Context(), raw); !errors.Is(err, ErrRefused) {
			t.Errorf("CheckURL(%q) = %v, %v; want refused", raw, u, err)
		}
		if c, err := g.DialContext(t.Context(), "tcp", name+":443"); !errors.Is(err, ErrRefused) {
			if c != nil {
				c.Close()
			}
			t.Errorf("DialContext(%q) = %v; want refused", name, err)
		}
	}
	if _, err := g.CheckURL(t.Context(), "https://public.test/hook"); err != nil {
		t.Errorf("CheckURL(public.test) = %v; want it to pass", err)
	}
	if _, err := g.CheckURL(t.Context(), "https://missing.test/hook"); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("CheckURL(missing.test) = %v; want a lookup error", err)
	}
}

// TestDialTimeCatchesRebinding shows that a name that passes CheckURL with
// a public address and then answers 127.0.0.1 is refused when dialed, and
// with the receiver allowed, is connected to the address of the second
// lookup, never to the one checked first.
func TestDialTimeCatchesRebinding(t *testing.T) {
	var hits atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "delivered")
	}))
	defer receiver.Close()
	_, port, _ := net.SplitHostPort(receiver.Listener.Addr().String())
	raw := "http://rebind.test:" + port + "/hook"

	z, r := startDNS(t)
	g := Guard{Resolver: r}
	if _, err := g.CheckURL(t.Context(), raw); err != nil {
		t.Fatalf("CheckURL(%q) = %v; want it to pass on the public answer", raw, err)
	}
	if n := z.count("rebind.test.", dns.TypeA); n != 1 {
		t.Fatalf("%d A queries after CheckURL, want 1", n)
	}
	if c, err := g.DialContext(t.Context(), "tcp", "rebind.test:"+port); !errors.Is(err, ErrRefused) {
		if c != nil {
			c.Close()
		}
		t.Errorf("DialContext after rebinding = %v; want refused", err)
	}
	if _, err := g.HTTPClient(0).Get(raw); !errors.Is(err, ErrRefused) {
		t.Errorf("Get after rebinding = %v; want refused", err)
	}
	if n := z.count("rebind.test.", dns.TypeA); n != 3 {
		t.Errorf("%d A queries after CheckURL and two dials, want 3: each dial must resolve again", n)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("receiver got %d requests; want none", n)
	}

	z, r = startDNS(t)
	allowed := Guard{Resolver: r, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	if _, err := allowed.CheckURL(t.Context(), raw); err != nil {
		t.Fatalf("CheckURL(%q) = %v", raw, err)
	}
	resp, err := allowed.HTTPClient(0).Get(raw)
	if err != nil {
		t.Fatalf("with the receiver allowed, Get = %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "delivered" || hits.Load() != 1 {
		t.Errorf("with the receiver allowed, got %q and %d requests; want the receiver's answer", body, hits.Load())
	}
	if n := z.count("rebind.test.", dns.TypeA); n != 2 {
		t.Errorf("%d A queries, want 2: the dial must resolve again, not reuse the checked answer", n)
	}
}

func TestHTTPClientFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer second.Close()
	first := httptest.NewServer(http.RedirectHandler(second.URL+"/stolen", http.StatusFound))
	defer first.Close()

	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	resp, err := g.HTTPClient(0).Post(first.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != second.URL+"/stolen" {
		t.Errorf("got %s to %q; want the 302 itself", resp.Status, resp.Header.Get("Location"))
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("redirect target got %d requests; want none", n)
	}
}

func TestHTTPClientIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		io.WriteString(w, "proxy")
	}))
	defer proxy.Close()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "receiver")
	}))
	defer receiver.Close()
	for _, v := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"} {
		t.Setenv(v, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	_, r := startDNS(t)
	g := Guard{Resolver: r, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	client := g.HTTPClient(0)
	if tr := client.Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("Transport.Proxy is set; want nil")
	}
	// A name, not 127.0.0.1: proxy settings never apply to loopback literals.
	_, port, _ := net.SplitHostPort(receiver.Listener.Addr().String())
	resp, err := client.Get("http://receiver.test:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "receiver" || proxied.Load() != 0 {
		t.Errorf("got %q, proxy saw %d requests; want the receiver directly", body, proxied.Load())
	}
}
