package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/miekg/dns"
)

// EnvSecret is the environment variable that holds the TSIG secret
// (base64) when tsig_secret_file is not set. The gateway passes it with
// the plugin instance's env list.
const EnvSecret = "BERTH_DNS_TSIG_SECRET"

// Config is the plugin's configuration, decoded by sdk.DecodeConfig. The
// TSIG secret is deliberately not a field: it comes from TSIGSecretFile or
// from the environment variable EnvSecret.
type Config struct {
	Server         string   `json:"server" berth:"required,description=The authoritative server's address as host:port (e.g. ns1.example.net:53); updates and transfers go to it over TCP"`
	TSIGKeyName    string   `json:"tsig_key_name" berth:"required,description=Name of the TSIG key as the server knows it (e.g. berth-key.)"`
	TSIGAlgorithm  string   `json:"tsig_algorithm" berth:"enum=hmac-sha224|hmac-sha256|hmac-sha384|hmac-sha512,default=hmac-sha256,description=The TSIG key's algorithm"`
	TSIGSecretFile string   `json:"tsig_secret_file" berth:"description=Absolute path of a file holding the TSIG secret in base64; when empty the secret is read from the environment variable BERTH_DNS_TSIG_SECRET"`
	Zones          []string `json:"zones" berth:"description=Zones the plugin may read and change (e.g. example.com.); empty allows every zone the key may change"`
	Timeout        string   `json:"timeout" berth:"default=10s,description=How long one exchange with the server may take (a Go duration such as 10s)"`
	DefaultTTL     int      `json:"default_ttl" berth:"min=1,max=604800,default=300,description=TTL in seconds of records given without one"`
}

// maxTimeout keeps a stuck server from holding a gateway worker.
const maxTimeout = 5 * time.Minute

// algorithms maps the configuration's names to miekg/dns's.
var algorithms = map[string]string{
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// Validate checks what the tags cannot say.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Server)
	if err != nil {
		return fmt.Errorf("field \"server\": %q is not host:port: %v", c.Server, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("field \"server\": port %q is not a number from 1 to 65535", port)
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n/") {
		return fmt.Errorf("field \"server\": %q has no usable host", c.Server)
	}
	if err := checkDomain(dns.Fqdn(c.TSIGKeyName)); err != nil {
		return fmt.Errorf("field \"tsig_key_name\": %v", err)
	}
	if c.TSIGSecretFile != "" && !filepath.IsAbs(c.TSIGSecretFile) {
		return fmt.Errorf("field \"tsig_secret_file\": %q is not an absolute path", c.TSIGSecretFile)
	}
	for _, z := range c.Zones {
		if err := checkDomain(dns.Fqdn(z)); err != nil || z == "." || z == "" {
			return fmt.Errorf("field \"zones\": %q is not a zone name", z)
		}
	}
	d, err := time.ParseDuration(c.Timeout)
	if err != nil {
		return fmt.Errorf("field \"timeout\": %v", err)
	}
	if d <= 0 || d > maxTimeout {
		return fmt.Errorf("field \"timeout\": %s is not between 0 and %s", d, maxTimeout)
	}
	return nil
}

// readSecret returns the TSIG secret from the file or the environment,
// where it is base64 encoded. Its errors never contain the
// secret, nor any part of the file.
func readSecret(c Config) ([]byte, error) {
	env := os.Getenv(EnvSecret)
	var raw string
	switch {
	case c.TSIGSecretFile != "" && env != "":
		return nil, fmt.Errorf("the TSIG secret is given both by field \"tsig_secret_file\" and by the environment variable %s; give one: %w", EnvSecret, sdk.ErrInvalidConfig)
	case c.TSIGSecretFile != "":
		data, err := os.ReadFile(c.TSIGSecretFile)
		if err != nil {
			// The *PathError names the file and the reason, nothing of its content.
			return nil, fmt.Errorf("field \"tsig_secret_file\": %v: %w", err, sdk.ErrInvalidConfig)
		}
		raw = string(data)
	case env != "":
		raw = env
	default:
		return nil, fmt.Errorf("no TSIG secret: set field \"tsig_secret_file\" or the environment variable %s: %w", EnvSecret, sdk.ErrInvalidConfig)
	}
	raw = strings.TrimSpace(raw)
	from := "field \"tsig_secret_file\""
	if c.TSIGSecretFile == "" {
		from = "environment variable " + EnvSecret
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: the TSIG secret is not valid base64: %w", from, sdk.ErrInvalidConfig)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("%s: the TSIG secret is %d bytes, want at least 16: %w", from, len(key), sdk.ErrInvalidConfig)
	}
	return key, nil
}

// errNoDomain is returned for names that are not domain names.
var errNoDomain = errors.New("not a domain name")
