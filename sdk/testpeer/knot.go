package testpeer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// KnotOptions configures StartKnot.
type KnotOptions struct {
	// Zones are the zones the server is authoritative for, fully
	// qualified ("example.com."); empty means just "example.com.". Each
	// starts with its SOA (serial 1), an NS record "ns.<zone>" and that
	// name's A record 192.0.2.53.
	Zones []string
}

// Knot is a running Knot DNS server (knotd from the Debian package knot),
// authoritative for its zones, that accepts dynamic updates (RFC 2136) and
// zone transfers signed with its TSIG key, and plain queries from anyone.
// It runs as the test's user, from a temporary directory, on a free port
// of 127.0.0.1, and stops when the test ends.
type Knot struct {
	// Addr is the server's address, "127.0.0.1:<port>", for UDP and TCP.
	Addr string
	// KeyName is the TSIG key's name, fully qualified ("berth-test-key.").
	KeyName string
	// KeyAlgorithm is the TSIG key's algorithm: "hmac-sha256".
	KeyAlgorithm string
	// KeySecret is the TSIG key's secret, base64 encoded.
	KeySecret string
	// Zones are the zones served, fully qualified.
	Zones []string
	// Dir holds the server's configuration, zone files, journal and
	// control socket.
	Dir string

	knotc  string
	sock   string
	cmd    *exec.Cmd
	exited chan struct{}
	stop   sync.Once
}

// knotBinary finds a knot program: on PATH, or in /usr/sbin, which is not
// on an ordinary user's PATH.
func knotBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH, in /usr/sbin or /usr/local/sbin (install the Debian package knot, or run deploy/e2e/build-k8s.sh)", name)
}

// unavailable fails the test with BERTH_E2E set and skips it otherwise,
// as Peer.Binary does.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if v := os.Getenv("BERTH_E2E"); v != "" && v != "0" {
		t.Fatalf("BERTH_E2E=%s but %s is unavailable: %v", v, what, err)
	}
	t.Skipf("SKIPPED, NOT PASSED: %s is unavailable: %v; set BERTH_E2E=1 to turn this skip into a failure", what, err)
}

// StartKnot starts knotd for the test and waits until it answers for
// every zone. A missing knotd or knotc fails the test when BERTH_E2E is
// set and skips it otherwise. The server is stopped, and its directory
// removed, when the test ends.
func StartKnot(t testing.TB, opts KnotOptions) *Knot {
	t.Helper()
	knotd, err := knotBinary("knotd")
	if err != nil {
		unavailable(t, "knotd", err)
	}
	knotc, err := knotBinary("knotc")
	if err != nil {
		unavailable(t, "knotc", err)
	}
	zones := slices.Clone(opts.Zones)
	if len(zones) == 0 {
		zones = []string{"example.com."}
	}
	for i, z := range zones {
		if _, ok := dns.IsDomainName(z); !ok || z == "." {
			t.Fatalf("StartKnot: zone %q is not a domain name", z)
		}
		zones[i] = dns.CanonicalName(z)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatalf("StartKnot: TSIG secret: %v", err)
	}
	// knotd's control socket path must fit in a sockaddr_un (108 bytes),
	// which a deep t.TempDir may not.
	dir, err := os.MkdirTemp("", "berth-knot-")
	if err != nil {
		t.Fatalf("StartKnot: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := &Knot{
		KeyName:      "berth-test-key.",
		KeyAlgorithm: "hmac-sha256",
		KeySecret:    base64.StdEncoding.EncodeToString(raw),
		Zones:        zones,
		Dir:          dir,
		knotc:        knotc,
		sock:         filepath.Join(dir, "run", "knot.sock"),
	}
	for _, sub := range []string{"run", "storage", "zones"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatalf("StartKnot: %v", err)
		}
	}
	for _, z := range zones {
		if err := os.WriteFile(filepath.Join(dir, "zones", z+"zone"), []byte(zoneFile(z)), 0o600); err != nil {
			t.Fatalf("StartKnot: %v", err)
		}
	}
	// The free port is found by binding it and letting it go, so another
	// process may take it before knotd binds it: then knotd fails to
	// start, and another port is tried.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("StartKnot: %v", err)
		}
		k.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = k.start(t, knotd, port); lastErr == nil {
			return k
		}
	}
	t.Fatalf("StartKnot: %v", lastErr)
	return nil
}

// zoneFile is a new zone's master file.
func zoneFile(zone string) string {
	return fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 192.0.2.53\n", zone)
}

// config is knotd's configuration: everything under k.Dir, the key, one
// ACL that lets the key update and transfer every zone, and zones whose
// changes stay in the journal (zonefile-sync: -1) rather than being
// written back to their files.
func (k *Knot) config(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n    rundir: %q\n    listen: 127.0.0.1@%d\n", filepath.Join(k.Dir, "run"), port)
	b.WriteString("log:\n  - target: stderr\n    any: info\n")
	fmt.Fprintf(&b, "database:\n    storage: %q\n", filepath.Join(k.Dir, "storage"))
	fmt.Fprintf(&b, "control:\n    listen: %q\n", k.sock)
	fmt.Fprintf(&b, "key:\n  - id: %s\n    algorithm: %s\n    secret: %s\n", k.KeyName, k.KeyAlgorithm, k.KeySecret)
	fmt.Fprintf(&b, "acl:\n  - id: berth-test\n    key: %s\n    action: [update, transfer]\n", k.KeyName)
	fmt.Fprintf(&b, "template:\n  - id: default\n    storage: %q\n    file: \"%%s.zone\"\n", filepath.Join(k.Dir, "zones"))
	b.WriteString("    zonefile-sync: -1\n    journal-content: changes\n    acl: berth-test\n")
	b.WriteString("zone:\n")
	for _, z := range k.Zones {
		fmt.Fprintf(&b, "  - domain: %s\n", z)
	}
	return b.String()
}

// freePort returns a port of 127.0.0.1 that was free for both TCP and UDP.
func freePort() (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("free port: found none free for both TCP and UDP")
}

// lockedBuffer is knotd's log, written by the process and read by tests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (k *Knot) start(t testing.TB, knotd string, port int) error {
	conf := filepath.Join(k.Dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(k.config(port)), 0o600); err != nil {
		return err
	}
	log := &lockedBuffer{}
	cmd := exec.Command(knotd, "-c", conf)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start knotd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	k.cmd, k.exited, k.stop = cmd, exited, sync.Once{}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pending := slices.Clone(k.Zones)
	for len(pending) > 0 {
		if k.answers(ctx, pending[0]) {
			pending = pending[1:]
			continue
		}
		select {
		case <-exited:
			return fmt.Errorf("knotd exited before it served %s:\n%s", pending[0], log.String())
		case <-ctx.Done():
			k.Stop()
			return fmt.Errorf("knotd did not serve %s within 30s:\n%s", pending[0], log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			t.Logf("knotd's log:\n%s", log.String())
		}
	})
	return nil
}

// answers says whether the server answers authoritatively for zone's SOA.
func (k *Knot) answers(ctx context.Context, zone string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeSOA)
	r, _, err := new(dns.Client).ExchangeContext(ctx, m, k.Addr)
	return err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) > 0
}

// Stop stops the server and waits for it to exit; a test of what happens
// when the server is down calls it. It is safe to call more than once.
func (k *Knot) Stop() {
	k.stop.Do(func() {
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.exited:
		case <-time.After(10 * time.Second):
			k.cmd.Process.Kill()
			<-k.exited
		}
	})
}

// Exchange sends m to the server over TCP, unsigned, and returns its
// answer.
func (k *Knot) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp", Timeout: 10 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, k.Addr)
	if err != nil {
		return nil, fmt.Errorf("query knotd at %s: %w", k.Addr, err)
	}
	return r, nil
}

// Query asks the server for name's records of type typ ("A", "TXT", ...)
// with a plain DNS query, as any resolver would, and returns the answer's
// records of that type (none when the name or type does not exist; a
// delegation's NS records from the referral). name
// is fully qualified. Any failure fails the test.
func (k *Knot) Query(t testing.TB, name, typ string) []dns.RR {
	t.Helper()
	qtype, ok := dns.StringToType[strings.ToUpper(typ)]
	if !ok {
		t.Fatalf("query %s: unknown type %q", name, typ)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, err := k.Exchange(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		t.Fatalf("query %s %s: knotd answered %s", name, typ, dns.RcodeToString[r.Rcode])
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	// A delegation's NS records come back as a referral.
	for _, rr := range r.Ns {
		if rr.Header().Rrtype == qtype && qtype == dns.TypeNS && dns.CanonicalName(rr.Header().Name) == dns.CanonicalName(name) {
			out = append(out, rr)
		}
	}
	return out
}

// Values is Query returning each record's data in presentation format
// ("192.0.2.1", "10 mail.example.com.", "\"a\" \"b\""), sorted.
func (k *Knot) Values(t testing.TB, name, typ string) []string {
	t.Helper()
	var out []string
	for _, rr := range k.Query(t, name, typ) {
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

// Serial returns the serial of zone's SOA, which every change increases.
func (k *Knot) Serial(t testing.TB, zone string) uint32 {
	t.Helper()
	rrs := k.Query(t, zone, "SOA")
	if len(rrs) != 1 {
		t.Fatalf("zone %s has %d SOA records", zone, len(rrs))
	}
	return rrs[0].(*dns.SOA).Serial
}

// AddRecord adds a record to zone behind any DNS client's back, as an
// operator editing the zone would: through knotc on the control socket,
// in a transaction of its own. owner is relative to zone ("www", "@") or
// fully qualified; data is in presentation format ("10 mail.example.com.",
// "\"some text\"").
func (k *Knot) AddRecord(t testing.TB, zone, owner string, ttl int, typ, data string) {
	t.Helper()
	k.transaction(t, zone, []string{"zone-set", zone, owner, strconv.Itoa(ttl), typ, data})
}

// RemoveRecord removes records from zone through knotc, as AddRecord
// adds them: those of owner and typ with data, or with any data when data
// is empty. Removing what does not exist fails the test.
func (k *Knot) RemoveRecord(t testing.TB, zone, owner, typ, data string) {
	t.Helper()
	args := []string{"zone-unset", zone, owner, typ}
	if data != "" {
		args = append(args, data)
	}
	k.transaction(t, zone, args)
}

// transaction runs one knotc command between zone-begin and zone-commit.
func (k *Knot) transaction(t testing.TB, zone string, args []string) {
	t.Helper()
	if err := k.knotcRun("zone-begin", zone); err != nil {
		t.Fatal(err)
	}
	if err := k.knotcRun(args...); err != nil {
		k.knotcRun("zone-abort", zone)
		t.Fatal(err)
	}
	if err := k.knotcRun("zone-commit", zone); err != nil {
		k.knotcRun("zone-abort", zone)
		t.Fatal(err)
	}
}

func (k *Knot) knotcRun(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.knotc, append([]string{"-s", k.sock}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("knotc %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
