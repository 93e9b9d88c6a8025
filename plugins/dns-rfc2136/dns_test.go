package main

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
	"github.com/berthgw/berth/sdk/plugintest"
	"github.com/hashicorp/go-hclog"
)

// TestRecordsOnTheWire writes each type through the plugin and reads it
// back with plain DNS queries to knotd, then changes it with SetRecords
// and deletes it, checking knotd's answers after each step.
func TestRecordsOnTheWire(t *testing.T) {
	k := startKnot(t)
	d := startPlugin(t, knotConfig(t, k))
	long := strings.Repeat("0123456789", 60) // 600 bytes: three strings
	tests := []struct {
		rec      sdk.Record
		qname    string
		wire     string // knotd's answer in presentation format
		set      sdk.Record
		wireSet  string
		getValue string // GetRecords' value, when it differs from rec.Value
	}{
		{rec: sdk.Record{Name: "www", Type: "A", Value: "192.0.2.10"}, qname: "www", wire: "192.0.2.10",
			set: sdk.Record{Name: "www", Type: "A", Value: "192.0.2.11"}, wireSet: "192.0.2.11"},
		{rec: sdk.Record{Name: "www", Type: "AAAA", Value: "2001:db8::10"}, qname: "www", wire: "2001:db8::10",
			set: sdk.Record{Name: "www", Type: "AAAA", Value: "2001:db8::11"}, wireSet: "2001:db8::11"},
		{rec: sdk.Record{Name: "alias", Type: "CNAME", Value: "www"}, qname: "alias", wire: "www.example.com.", getValue: "www.example.com.",
			set: sdk.Record{Name: "alias", Type: "CNAME", Value: "lb.example.net."}, wireSet: "lb.example.net."},
		{rec: sdk.Record{Name: "long", Type: "TXT", Value: long}, qname: "long", wire: `"` + long[:255] + `" "` + long[255:510] + `" "` + long[510:] + `"`,
			set: sdk.Record{Name: "long", Type: "TXT", Value: `say "hi" \ done`}, wireSet: `"say \"hi\" \\ done"`},
		{rec: sdk.Record{Name: "_berth-owner.app", Type: "TXT", Value: "heritage=berth,berth/owner=tenant-a,berth/resource=route/web"}, qname: "_berth-owner.app",
			wire: `"heritage=berth,berth/owner=tenant-a,berth/resource=route/web"`,
			set:  sdk.Record{Name: "_berth-owner.app", Type: "TXT", Value: "heritage=berth,berth/owner=tenant-b"}, wireSet: `"heritage=berth,berth/owner=tenant-b"`},
		{rec: sdk.Record{Name: "@", Type: "MX", Value: "mail", Priority: 10}, qname: "@", wire: "10 mail.example.com.", getValue: "mail.example.com.",
			set: sdk.Record{Name: "@", Type: "MX", Value: "mx2.example.net.", Priority: 20}, wireSet: "20 mx2.example.net."},
		{rec: sdk.Record{Name: "_sip._tcp", Type: "SRV", Value: "5060 sip.example.com.", Priority: 10, Weight: 5}, qname: "_sip._tcp", wire: "10 5 5060 sip.example.com.",
			set: sdk.Record{Name: "_sip._tcp", Type: "SRV", Value: "5061 sip2.example.com.", Priority: 20, Weight: 1}, wireSet: "20 1 5061 sip2.example.com."},
		{rec: sdk.Record{Name: "sub", Type: "NS", Value: "ns1.example.net."}, qname: "sub", wire: "ns1.example.net.",
			set: sdk.Record{Name: "sub", Type: "NS", Value: "ns2.example.net."}, wireSet: "ns2.example.net."},
		{rec: sdk.Record{Name: "@", Type: "CAA", Value: `0 issue "letsencrypt.org"`}, qname: "@", wire: `0 issue "letsencrypt.org"`,
			set: sdk.Record{Name: "@", Type: "CAA", Value: "128 issuewild ;"}, wireSet: `128 issuewild ";"`},
		{rec: sdk.Record{Name: "*.apps", Type: "A", Value: "192.0.2.20"}, qname: "anything.apps", wire: "192.0.2.20",
			set: sdk.Record{Name: "*.apps", Type: "A", Value: "192.0.2.21"}, wireSet: "192.0.2.21"},
	}
	for _, tt := range tests {
		t.Run(tt.rec.Type+"/"+tt.rec.Name, func(t *testing.T) {
			fqdn := zone
			if tt.qname != "@" {
				fqdn = tt.qname + "." + zone
			}
			if _, err := d.AppendRecords(ctx(t), change(tt.rec)); err != nil {
				t.Fatal(err)
			}
			if got := k.Values(t, fqdn, tt.rec.Type); !slices.Contains(got, tt.wire) {
				t.Errorf("after append knotd answers %q, want %q among them", got, tt.wire)
			}
			want := tt.rec.Value
			if tt.getValue != "" {
				want = tt.getValue
			}
			recs, err := d.GetRecords(ctx(t), zone)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(recs, func(r sdk.Record) bool {
				return r.Name == tt.rec.Name && r.Type == tt.rec.Type && r.Value == want && r.Priority == tt.rec.Priority && r.Weight == tt.rec.Weight
			}) {
				t.Errorf("GetRecords lacks %+v (value %q): %+v", tt.rec, want, recs)
			}

			if _, err := d.SetRecords(ctx(t), change(tt.set)); err != nil {
				t.Fatal(err)
			}
			got := k.Values(t, fqdn, tt.rec.Type)
			if tt.rec.Type == "MX" || tt.rec.Type == "CAA" || tt.rec.Type == "NS" && tt.qname == "@" {
				// The apex's other records of the type are not the test's.
				if !slices.Contains(got, tt.wireSet) || slices.Contains(got, tt.wire) {
					t.Errorf("after set knotd answers %q, want %q and not %q", got, tt.wireSet, tt.wire)
				}
			} else if !slices.Equal(got, []string{tt.wireSet}) {
				t.Errorf("after set knotd answers %q, want just %q", got, tt.wireSet)
			}

			deleted, err := d.DeleteRecords(ctx(t), change(sdk.Record{Name: tt.set.Name, Type: tt.set.Type}))
			if err != nil {
				t.Fatal(err)
			}
			if len(deleted) != 1 {
				t.Errorf("DeleteRecords returned %+v, want one record", deleted)
			}
			if got := k.Values(t, fqdn, tt.rec.Type); slices.Contains(got, tt.wireSet) {
				t.Errorf("after delete knotd still answers %q", got)
			}
		})
	}
}

// TestACMEChallenge: DNS-01 for example.com and *.example.com puts two
// TXT values at one name; each is added and removed on its own.
func TestACMEChallenge(t *testing.T) {
	k := startKnot(t)
	d := startPlugin(t, knotConfig(t, k))
	name := "_acme-challenge.shop"
	fqdn := name + "." + zone
	for _, token := range []string{"token-for-the-name", "token-for-the-wildcard"} {
		if _, err := d.AppendRecords(ctx(t), change(sdk.Record{Name: name, Type: "TXT", Value: token, TTL: time.Minute})); err != nil {
			t.Fatal(err)
		}
	}
	if got := k.Values(t, fqdn, "TXT"); !slices.Equal(got, []string{`"token-for-the-name"`, `"token-for-the-wildcard"`}) {
		t.Fatalf("knotd answers %q", got)
	}
	if _, err := d.DeleteRecords(ctx(t), change(sdk.Record{Name: name, Type: "TXT", Value: "token-for-the-name"})); err != nil {
		t.Fatal(err)
	}
	if got := k.Values(t, fqdn, "TXT"); !slices.Equal(got, []string{`"token-for-the-wildcard"`}) {
		t.Errorf("after deleting one token knotd answers %q", got)
	}
}

// TestCNAMEClash: a server ignores an A record added beside a CNAME; the
// plugin reads the name back and says so.
func TestCNAMEClash(t *testing.T) {
	k := startKnot(t)
	d := startPlugin(t, knotConfig(t, k))
	if _, err := d.AppendRecords(ctx(t), change(sdk.Record{Name: "cdn", Type: "CNAME", Value: "edge.example.net."})); err != nil {
		t.Fatal(err)
	}
	_, err := d.AppendRecords(ctx(t), change(sdk.Record{Name: "cdn", Type: "A", Value: "192.0.2.1"}))
	wantKind(t, "an A beside a CNAME", err, sdk.ErrFailedPrecondition)
	if got := k.Values(t, "cdn."+zone, "CNAME"); !slices.Equal(got, []string{"edge.example.net."}) {
		t.Errorf("the CNAME became %q", got)
	}
}

// TestBadKey: a wrong secret or an unknown key name is refused by the
// server, reported as ErrPermissionDenied saying so, and changes nothing.
func TestBadKey(t *testing.T) {
	k := startKnot(t)
	tests := []struct {
		name, keyName, secret, alg string
	}{
		{"wrong secret", k.KeyName, "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", ""},
		{"unknown key", "no-such-key.", k.KeySecret, ""},
		{"wrong algorithm", k.KeyName, k.KeySecret, "hmac-sha512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serial := k.Serial(t, zone)
			d := startPlugin(t, pluginConfig{Server: k.Addr, TSIGKeyName: tt.keyName, TSIGAlgorithm: tt.alg, TSIGSecretFile: secretFile(t, tt.secret)})
			_, err := d.AppendRecords(ctx(t), change(sdk.Record{Name: "badkey", Type: "A", Value: "192.0.2.66"}))
			wantKind(t, "AppendRecords", err, sdk.ErrPermissionDenied)
			if err == nil || !strings.Contains(err.Error(), "refused TSIG key") {
				t.Errorf("the error does not say the key was refused: %v", err)
			}
			_, err = d.GetRecords(ctx(t), zone)
			wantKind(t, "GetRecords", err, sdk.ErrPermissionDenied)
			if got := k.Values(t, "badkey."+zone, "A"); len(got) != 0 {
				t.Errorf("knotd has the record: %q", got)
			}
			if k.Serial(t, zone) != serial {
				t.Error("the zone's serial changed")
			}
		})
	}
}

// TestServerDown: a server that is gone is ErrRetryable.
func TestServerDown(t *testing.T) {
	k := startKnot(t)
	d := startPlugin(t, knotConfig(t, k))
	k.Stop()
	_, err := d.AppendRecords(ctx(t), change(sdk.Record{Name: "www", Type: "A", Value: "192.0.2.1"}))
	wantKind(t, "AppendRecords with the server down", err, sdk.ErrRetryable)
	_, err = d.GetRecords(ctx(t), zone)
	wantKind(t, "GetRecords with the server down", err, sdk.ErrRetryable)
}

// TestSilentServer: a server that takes the connection and never answers
// is ErrRetryable after the configured timeout.
func TestSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	d := startPlugin(t, pluginConfig{Server: l.Addr().String(), TSIGKeyName: "k.", TSIGSecretFile: secretFile(t, "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="), Timeout: "200ms"})
	_, err = d.GetRecords(ctx(t), zone)
	wantKind(t, "GetRecords of a silent server", err, sdk.ErrRetryable)
}

// TestZones: a zone the server does not serve is ErrNotFound; one outside
// the allow-list is refused before anything is sent.
func TestZones(t *testing.T) {
	k := startKnot(t)
	d := startPlugin(t, knotConfig(t, k))
	for _, z := range []string{"example.org.", "sub.example.com.", "nope.invalid."} {
		_, err := d.GetRecords(ctx(t), z)
		wantKind(t, "GetRecords "+z, err, sdk.ErrNotFound)
		_, err = d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: z, Records: []sdk.Record{{Name: "x", Type: "A", Value: "192.0.2.1"}}})
		wantKind(t, "AppendRecords "+z, err, sdk.ErrNotFound)
	}
	cfg := knotConfig(t, k)
	cfg.Zones = []string{"Example.COM"}
	d = startPlugin(t, cfg)
	if _, err := d.GetRecords(ctx(t), "example.com"); err != nil {
		t.Errorf("an allowed zone: %v", err)
	}
	_, err := d.AppendRecords(ctx(t), sdk.RecordsChange{Zone: "other.example.", Records: []sdk.Record{{Name: "x", Type: "A", Value: "192.0.2.1"}}})
	wantKind(t, "a zone outside the list", err, sdk.ErrPermissionDenied)
	if got := k.Values(t, "x.other.example.", "A"); len(got) != 0 {
		t.Errorf("knotd has %q", got)
	}
}

// counter is a TCP server that counts connections and answers nothing.
func counter(t *testing.T) (string, *atomic.Int32) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), &n
}

// TestHostileInput: bad names and values are ErrInvalidArgument, and
// nothing reaches the server.
func TestHostileInput(t *testing.T) {
	addr, conns := counter(t)
	d := startPlugin(t, pluginConfig{Server: addr, TSIGKeyName: "k.", TSIGSecretFile: secretFile(t, "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")})
	long := strings.Repeat("a.", 130)
	bad := map[string]sdk.Record{
		"space in name":        {Name: "www x", Type: "A", Value: "192.0.2.1"},
		"empty label":          {Name: "a..b", Type: "A", Value: "192.0.2.1"},
		"dotdot":               {Name: "..", Type: "A", Value: "192.0.2.1"},
		"long name":            {Name: strings.TrimSuffix(long, "."), Type: "A", Value: "192.0.2.1"},
		"long label":           {Name: strings.Repeat("a", 64), Type: "A", Value: "192.0.2.1"},
		"newline in name":      {Name: "www\nevil", Type: "A", Value: "192.0.2.1"},
		"escape in name":       {Name: `w\046w`, Type: "A", Value: "192.0.2.1"},
		"outside zone":         {Name: "www.example.org.", Type: "A", Value: "192.0.2.1"},
		"inner wildcard":       {Name: "a.*", Type: "A", Value: "192.0.2.1"},
		"no name":              {Type: "A", Value: "192.0.2.1"},
		"unknown type":         {Name: "www", Type: "SOA", Value: "x"},
		"type with space":      {Name: "www", Type: "A IN", Value: "192.0.2.1"},
		"A not an address":     {Name: "www", Type: "A", Value: "192.0.2.1 ; rm"},
		"A given IPv6":         {Name: "www", Type: "A", Value: "2001:db8::1"},
		"AAAA given IPv4":      {Name: "www", Type: "AAAA", Value: "192.0.2.1"},
		"TXT with newline":     {Name: "www", Type: "TXT", Value: "a\nwww 60 IN A 192.0.2.1"},
		"TXT too long":         {Name: "www", Type: "TXT", Value: strings.Repeat("x", 5000)},
		"CNAME target spaces":  {Name: "www", Type: "CNAME", Value: "a b."},
		"CNAME at apex":        {Name: "@", Type: "CNAME", Value: "x.example.net."},
		"MX bad target":        {Name: "@", Type: "MX", Value: "mail..example.com.", Priority: 10},
		"SRV without port":     {Name: "_x._tcp", Type: "SRV", Value: "target.example.com."},
		"CAA with quote":       {Name: "@", Type: "CAA", Value: `0 issue "a"b"`},
		"priority on A":        {Name: "www", Type: "A", Value: "192.0.2.1", Priority: 5},
		"huge priority":        {Name: "@", Type: "MX", Value: "mail", Priority: 70000},
		"control char in TXT":  {Name: "www", Type: "TXT", Value: "a\x00b"},
		"wildcard CNAME value": {Name: "www", Type: "CNAME", Value: "*.example.net."},
	}
	for name, r := range bad {
		t.Run(name, func(t *testing.T) {
			for _, call := range []struct {
				name string
				fn   func(context.Context, sdk.RecordsChange) ([]sdk.Record, error)
			}{{"Append", d.AppendRecords}, {"Set", d.SetRecords}, {"Delete", d.DeleteRecords}} {
				if call.name == "Delete" && (name == "A not an address" || strings.Contains(name, "TXT")) {
					// A delete pattern's value or TTL is only matched.
					continue
				}
				_, err := call.fn(ctx(t), change(r))
				wantKind(t, call.name, err, sdk.ErrInvalidArgument)
			}
		})
	}
	for _, z := range []string{"exa mple.com.", "..", "*.example.com.", ".", ""} {
		_, err := d.GetRecords(ctx(t), z)
		wantKind(t, "GetRecords "+z, err, sdk.ErrInvalidArgument)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections reached the server", n)
	}
}

// syncBuffer collects the host's log of a plugin process.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestSecretNeverShown runs the plugin process at trace level, the secret
// in its environment, through good and failing calls, and looks for the
// secret in every error and in everything the process logged.
func TestSecretNeverShown(t *testing.T) {
	k := startKnot(t)
	bin := plugintest.Build(t, ".")
	var logs syncBuffer
	start := func(secret string) pluginclient.DNSProvider {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := pluginclient.Start(ctx, pluginclient.Config{
			Name:   "dns-rfc2136",
			Path:   bin,
			Env:    []string{sdk.EnvLogLevel + "=trace", EnvSecret + "=" + secret},
			Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs}),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Kill)
		if err := p.Base().Configure(ctx, pluginConfig{Server: k.Addr, TSIGKeyName: k.KeyName}.JSON()); err != nil {
			t.Fatal(err)
		}
		d, err := p.DNS()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	wrong := "V3JvbmdTZWNyZXRXcm9uZ1NlY3JldFdyb25nU2VjcmV0"
	var errs []error
	good := start(k.KeySecret)
	_, err := good.AppendRecords(ctx(t), change(sdk.Record{Name: "www", Type: "A", Value: "192.0.2.1"}))
	errs = append(errs, err)
	_, err = good.GetRecords(ctx(t), zone)
	errs = append(errs, err)
	_, err = good.AppendRecords(ctx(t), change(sdk.Record{Name: "bad name", Type: "A", Value: "192.0.2.1"}))
	errs = append(errs, err)
	bad := start(wrong)
	_, err = bad.AppendRecords(ctx(t), change(sdk.Record{Name: "www", Type: "A", Value: "192.0.2.2"}))
	errs = append(errs, err)
	_, err = bad.GetRecords(ctx(t), zone)
	errs = append(errs, err)
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || errs[3] == nil || errs[4] == nil {
		t.Fatalf("calls: %v", errs)
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		if strings.Contains(err.Error(), k.KeySecret) || strings.Contains(err.Error(), wrong) {
			t.Errorf("an error shows the secret: %v", err)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "configured") {
		t.Fatalf("the plugin's log was not captured:\n%s", out)
	}
	if strings.Contains(out, k.KeySecret) || strings.Contains(out, wrong) {
		t.Errorf("the log shows a secret:\n%s", out)
	}
}

// TestConfig checks the configuration's rules and where the secret may
// come from.
func TestConfig(t *testing.T) {
	c := plugintest.StartInProcess(t, options(plugintest.TestLogger(t, "dns-rfc2136")))
	secret := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
	file := secretFile(t, secret)
	bad := map[string]string{
		"no server":        `{"tsig_key_name": "k."}`,
		"server no port":   `{"server": "127.0.0.1", "tsig_key_name": "k."}`,
		"server bad port":  `{"server": "127.0.0.1:99999", "tsig_key_name": "k."}`,
		"no key name":      `{"server": "127.0.0.1:53"}`,
		"bad key name":     `{"server": "127.0.0.1:53", "tsig_key_name": "a b"}`,
		"bad algorithm":    `{"server": "127.0.0.1:53", "tsig_key_name": "k.", "tsig_algorithm": "hmac-md5"}`,
		"relative file":    `{"server": "127.0.0.1:53", "tsig_key_name": "k.", "tsig_secret_file": "key"}`,
		"bad zone":         `{"server": "127.0.0.1:53", "tsig_key_name": "k.", "zones": ["a..b"]}`,
		"bad timeout":      `{"server": "127.0.0.1:53", "tsig_key_name": "k.", "timeout": "1h"}`,
		"secret in config": `{"server": "127.0.0.1:53", "tsig_key_name": "k.", "tsig_secret": "` + secret + `"}`,
	}
	for name, raw := range bad {
		err := c.Base().ValidateConfig(ctx(t), []byte(raw))
		wantKind(t, "ValidateConfig "+name, err, sdk.ErrInvalidConfig)
	}
	base := `{"server": "127.0.0.1:53", "tsig_key_name": "k."`
	configure := func(env, extra string) error {
		t.Setenv(EnvSecret, env)
		return c.Base().Configure(ctx(t), []byte(base+extra+"}"))
	}
	if err := configure("", `, "tsig_secret_file": "`+file+`"`); err != nil {
		t.Errorf("secret in a file: %v", err)
	}
	if err := configure(secret, ""); err != nil {
		t.Errorf("secret in the environment: %v", err)
	}
	for name, err := range map[string]error{
		"no secret":    configure("", ""),
		"both":         configure(secret, `, "tsig_secret_file": "`+file+`"`),
		"missing file": configure("", `, "tsig_secret_file": "/nonexistent/tsig.key"`),
		"not base64":   configure("not*base64*"+secret, ""),
		"short":        configure("c2hvcnQ=", ""),
	} {
		wantKind(t, name, err, sdk.ErrInvalidConfig)
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}

func TestTXTRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", `q"uote\back`, "tab\there", "ünïcode ✓", strings.Repeat("é", 300), strings.Repeat("x", 255), strings.Repeat("x", 256)} {
		parts := splitTXT(v)
		for _, p := range parts {
			if n := len(unescapeTXT(p)); n > 255 {
				t.Errorf("%q: a string of %d bytes", v, n)
			}
		}
		if got := joinTXT(parts); got != v {
			t.Errorf("%q came back as %q", v, got)
		}
	}
}
