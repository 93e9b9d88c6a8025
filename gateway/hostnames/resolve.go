package hostnames

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// resolution is what the resolver says of one hostname.
type resolution struct {
	status, message string
}

// maxParallelQueries bounds the questions a pass has in flight.
const maxParallelQueries = 8

// resolveAll asks the configured resolver where each binding's hostname
// points, keyed by binding id. Without a resolver or a base domain there
// is nothing to compare with: bindings stay pending.
func (s *Service) resolveAll(ctx context.Context, p pass) map[string]resolution {
	out := map[string]resolution{}
	if p.set.Resolver == "" || !p.set.Enabled() {
		msg := "no resolver is configured to check public resolution"
		if !p.set.Enabled() {
			msg = "managed DNS is off: no base domain to point at"
		}
		for _, b := range p.bindings {
			out[b.ID] = resolution{Pending, msg}
		}
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelQueries)
	targets := &targetCache{}
	for _, b := range p.bindings {
		if !p.fleet.holds(&b) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := s.resolve(ctx, p.set, b.Hostname, p.set.Target(b.Cluster), targets)
			mu.Lock()
			out[b.ID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// targetCache holds the addresses of each cluster's name for one pass:
// asked once, not once for every hostname that points at it.
type targetCache struct {
	mu   sync.Mutex
	once map[string]*sync.Once
	got  map[string][]string
	err  map[string]error
}

func (c *targetCache) addresses(ctx context.Context, s *Service, resolver, target string) ([]string, error) {
	c.mu.Lock()
	if c.once == nil {
		c.once, c.got, c.err = map[string]*sync.Once{}, map[string][]string{}, map[string]error{}
	}
	o := c.once[target]
	if o == nil {
		o = new(sync.Once)
		c.once[target] = o
	}
	c.mu.Unlock()
	o.Do(func() {
		got, err := s.addresses(ctx, resolver, target)
		c.mu.Lock()
		c.got[target], c.err[target] = got, err
		c.mu.Unlock()
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[target], c.err[target]
}

// resolve judges hostname: ready when it is a CNAME to target, or
// resolves to exactly target's addresses (a provider that flattens
// CNAMEs); error when it points elsewhere; pending when it does not
// resolve yet. targets may be nil (no cache). Messages are the same
// from pass to pass for the same answer, so an unchanged status costs no
// write, and name no address that is not public: a member binds any name
// they like, and must not learn what an internal resolver answers.
func (s *Service) resolve(ctx context.Context, set Settings, hostname, target string, targets *targetCache) resolution {
	if targets == nil {
		targets = &targetCache{}
	}
	name := hostname
	if rest, ok := strings.CutPrefix(hostname, "*."); ok {
		name = "berth-check." + rest // any name the wildcard covers
	}
	cname, err := s.query(ctx, set.Resolver, name, dns.TypeCNAME)
	if err != nil {
		return resolution{Pending, err.Error()}
	}
	if len(cname) > 0 {
		if cname[0] == target {
			return resolution{Ready, ""}
		}
		return resolution{Error, cut(fmt.Sprintf("%s is a CNAME to %s, not to %s", hostname, cname[0], target))}
	}
	have, err := s.addresses(ctx, set.Resolver, name)
	if err != nil {
		return resolution{Pending, err.Error()}
	}
	if len(have) == 0 {
		return resolution{Pending, fmt.Sprintf("%s does not resolve yet; point it (CNAME) at %s", hostname, target)}
	}
	want, err := targets.addresses(ctx, s, set.Resolver, target)
	if err == nil && slices.Equal(have, want) {
		return resolution{Ready, ""}
	}
	shown := "addresses that are not public"
	if slices.IndexFunc(have, notPublic) < 0 {
		shown = strings.Join(have, ", ")
	}
	return resolution{Error, cut(fmt.Sprintf("%s resolves to %s, not to %s", hostname, shown, target))}
}

// notPublic reports whether an address is one members should not learn
// from the resolver: private, loopback, link-local, and the like.
func notPublic(a string) bool {
	ip, err := netip.ParseAddr(a)
	return err != nil || !ip.IsGlobalUnicast() || ip.IsPrivate()
}

// addresses are name's A and AAAA records, sorted.
func (s *Service) addresses(ctx context.Context, resolver, name string) ([]string, error) {
	var out []string
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		got, err := s.query(ctx, resolver, name, t)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	slices.Sort(out)
	return out, nil
}

// query asks resolver for name's records of type t: the values of the
// answers of that type (names without the final dot, in lower case).
func (s *Service) query(ctx context.Context, resolver, name string, t uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	m.RecursionDesired = true
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	c := &dns.Client{Timeout: s.opts.QueryTimeout}
	in, _, err := c.ExchangeContext(ctx, m, resolver)
	if err != nil {
		// Not err's own text: it names the local port, new every time.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("the resolver %s did not answer for %s within %s", resolver, name, s.opts.QueryTimeout)
		}
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return nil, fmt.Errorf("asking %s for %s: %w", resolver, name, err)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s answered %s for %s", resolver, dns.RcodeToString[in.Rcode], name)
	}
	var out []string
	for _, rr := range in.Answer {
		if rr.Header().Rrtype != t || !strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) {
			continue
		}
		switch v := rr.(type) {
		case *dns.CNAME:
			out = append(out, Normalize(v.Target))
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out, nil
}
