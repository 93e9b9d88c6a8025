package netguard

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// refusedHosts spells, as URL hosts, every kind of address the guard must
// refuse by default. None of them needs DNS.
var refusedHosts = []string{
	// loopback, however spelled
	"127.0.0.1", "127.1", "127.0.1", "0x7f000001", "2130706433", "0177.0.0.1",
	"0x7f.1", "127.0.0.1.", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]",
	"[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b:1::7f00:1]",
	"[2002:7f00:1::]", "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
	"localhost", "LOCALHOST.", "receiver.localhost",
	// unspecified
	"0.0.0.0", "0", "[::]",
	// cloud metadata
	"169.254.169.254", "0xa9fea9fe", "2852039166", "[::ffff:169.254.169.254]",
	"[64:ff9b::a9fe:a9fe]", "[fd00:ec2::254]", "168.63.129.16", "100.100.100.200",
	"metadata.google.internal", "metadata.google.internal.",
	// private, CGNAT, link-local, unique-local
	"10.0.0.1", "012.1", "172.16.0.1", "192.168.1.1", "[::ffff:192.168.1.1]",
	"100.64.0.1", "169.254.1.1", "[fe80::1]", "[fe80::1%25eth0]", "[fc00::1]",
	"[fd12:3456::1]",
	// multicast, broadcast, reserved, benchmarking
	"224.0.0.1", "[ff02::1]", "255.255.255.255", "240.0.0.1", "198.18.0.1",
	// malformed
	"256.0.0.1", "1.2.3.4.5",
}

func TestCheckURLRefusesEveryForm(t *testing.T) {
	var g Guard
	for _, host := range refusedHosts {
		for _, raw := range []string{"http://" + host + "/", "https://" + host + ":8443/hook?x=1"} {
			u, err := g.CheckURL(t.Context(), raw)
			if !errors.Is(err, ErrRefused) {
				t.Errorf("CheckURL(%q) = %v, %v; want refused", raw, u, err)
			}
		}
	}
}

func TestCheckURLRefusesSchemesAndShapes(t *testing.T) {
	var g Guard
	tests := []struct {
		raw  string
		want string // in the error message
	}{
		{"file:///etc/passwd", `scheme "file"`},
		{"gopher://93.184.216.34:70/_GET", `scheme "gopher"`},
		{"ftp://93.184.216.34/", `scheme "ftp"`},
		{"dict://93.184.216.34:11211/", `scheme "dict"`},
		{"javascript:alert(1)", `scheme "javascript"`},
		{"//93.184.216.34/", `scheme ""`},
		{"93.184.216.34", `scheme ""`},
		{"http://user:pass@example.com/", "user info"},
		{"http://user@example.com/", "user info"},
		{"http://@example.com/", "user info"},
		{"http://example.com@127.0.0.1/", "user info"},
		{"http:example.com", "no host"},
		{"http:///path", "no host"},
		{"http://:80/", "no host"},
		{"http://93.184.216.34:0/", `port "0"`},
		{"http://93.184.216.34:65536/", `port "65536"`},
		{"http://93.184.216.34:99999999999/", `port "99999999999"`},
		{"http://93.184.216.34:http/", "malformed URL"},
		{"http://93.184.216.34:-1/", "malformed URL"},
		{"http://[::1/", "malformed URL"},
		{"http://exa mple.com/", "malformed URL"},
	}
	for _, tt := range tests {
		u, err := g.CheckURL(t.Context(), tt.raw)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckURL(%q) = %v, %v; want refused with %q", tt.raw, u, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "pass") {
			t.Errorf("CheckURL(%q) error %q repeats the password", tt.raw, err)
		}
	}
}

func TestCheckURLPassesPublicLiterals(t *testing.T) {
	var g Guard
	for _, raw := range []string{
		"http://93.184.216.34/",
		"https://93.184.216.34:8443/services/T000/B000/secret",
		"HTTPS://[2606:4700::1111]/hook",
		"http://[64:ff9b::5db8:d822]:80/",
		"https://1.1.1.1:65535/",
	} {
		u, err := g.CheckURL(t.Context(), raw)
		if err != nil || u == nil {
			t.Errorf("CheckURL(%q) = %v, %v; want it to pass", raw, u, err)
		}
	}
}

// TestDialContextRefusesLoopbackReceiver runs a real receiver on loopback
// and shows that no spelling reaches it until the allow-list names it, and
// that the allow-list opens only what it names.
func TestDialContextRefusesLoopbackReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// The receiver reports the first line of every connection it accepts.
	lines := make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(lines)
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			lines <- line
		}
	}()

	var closed Guard
	for _, host := range refusedHosts {
		address := strings.Replace(host, "%25", "%", 1) + ":" + port // as http.Transport passes it
		if c, err := closed.DialContext(t.Context(), "tcp", address); !errors.Is(err, ErrRefused) {
			if c != nil {
				c.Close()
			}
			t.Errorf("DialContext(%q) = %v; want refused", address, err)
		}
	}

	open := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, address := range []string{"127.0.0.2:" + port, "[::1]:" + port, "localhost:" + port, "0.0.0.0:" + port, "127.0.0.1:0", "127.0.0.1:http"} {
		if c, err := open.DialContext(t.Context(), "tcp", address); !errors.Is(err, ErrRefused) {
			if c != nil {
				c.Close()
			}
			t.Errorf("with 127.0.0.1/32 allowed, DialContext(%q) = %v; want refused", address, err)
		}
	}
	if _, err := open.DialContext(t.Context(), "udp", "127.0.0.1:"+port); err == nil {
		t.Error(`DialContext("udp") succeeded; want only tcp`)
	}

	// Connections are accepted in order, so if the first line the receiver
	// sees is the allowed one, none of the refused dials reached it.
	for _, host := range []string{"127.0.0.1", "0x7f000001", "[::ffff:127.0.0.1]"} {
		c, err := open.DialContext(t.Context(), "tcp", host+":"+port)
		if err != nil {
			t.Fatalf("with 127.0.0.1/32 allowed, DialContext(%s) = %v", host, err)
		}
		if _, err := c.Write([]byte(host + "\n")); err != nil {
			t.Fatal(err)
		}
		if got := <-lines; got != host+"\n" {
			t.Fatalf("receiver saw %q first; want %q (a refused dial connected)", got, host)
		}
		c.Close()
	}
}
