// Package hostnames is Berth's managed DNS: the hostnames bound to each
// cluster, the settings that put them under a base domain, and the
// reconciler that keeps a zone's records — one CNAME per cluster,
// <cluster>.<base_domain>, and one per platform-managed hostname, pointing
// at it — the way Berth wants them, through a DNS plugin. Berth owns a
// record only when the zone says so: an ownership TXT record beside it
// (as external-dns marks its records), checked before every change, so
// records someone else made are never touched.
package hostnames

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/berthgw/berth/gateway/fault"
)

// Limits of a DNS name (RFC 1035 §2.3.4), written without the final dot.
const (
	maxNameLength  = 253
	maxLabelLength = 63
)

// Normalize returns name in the form Berth stores: lower case, without
// the final dot. It does not validate.
func Normalize(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// CheckHostname validates a hostname a member binds: letters, digits and
// hyphens in labels of 1 to 63 characters (no hyphen first or last, no
// underscore), at most 253 characters, at least two labels, not an IP
// address and not a public suffix ("com", "co.uk", "github.io"). A
// wildcard is allowed only as the whole first label ("*.shop.example.com"),
// never alone. name must be normalized.
func CheckHostname(name string) error {
	if name == "" {
		return fault.New(fault.Invalid, "hostname is required")
	}
	if len(name) > maxNameLength {
		return fault.New(fault.Invalid, "hostname is %d characters long; at most %d", len(name), maxNameLength)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fault.New(fault.Invalid, "%q is an IP address, not a hostname", name)
	}
	labels := strings.Split(name, ".")
	rest := labels
	if labels[0] == "*" {
		rest = labels[1:]
	}
	if len(rest) < 2 {
		return fault.New(fault.Invalid, "%q is not a hostname under a domain (want e.g. app.example.com)", name)
	}
	for _, l := range rest {
		if err := checkLabel(l); err != nil {
			return fault.New(fault.Invalid, "hostname %q: %v", name, err)
		}
	}
	if last := rest[len(rest)-1]; strings.Trim(last, "0123456789") == "" {
		return fault.New(fault.Invalid, "%q ends in a number: not a hostname", name)
	}
	base := strings.Join(rest, ".")
	if suffix, _ := publicsuffix.PublicSuffix(base); suffix == base {
		return fault.New(fault.Invalid, "%q is a public suffix: nobody owns names directly under it", base)
	}
	return nil
}

// checkLabel validates one label of a hostname.
func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("an empty label (two dots, or a dot first)")
	case len(l) > maxLabelLength:
		return fmt.Errorf("label %q is %d characters long; at most %d", l, len(l), maxLabelLength)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	case l == "*":
		return fmt.Errorf("a wildcard is allowed only as the first label")
	}
	for _, c := range l {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c == '_':
			return fmt.Errorf("label %q has an underscore, which hostnames do not allow", l)
		default:
			return fmt.Errorf("label %q has %q; hostnames use letters, digits and hyphens", l, c)
		}
	}
	return nil
}

// Under reports whether name is sub, or a name below it.
func Under(name, sub string) bool {
	return name == sub || strings.HasSuffix(name, "."+sub)
}

// StrictlyUnder reports whether name is a name below sub (not sub itself).
func StrictlyUnder(name, sub string) bool {
	return strings.HasSuffix(name, "."+sub)
}

// ownerName is where the ownership record of name lives. A TXT record
// cannot sit beside a CNAME at one name, so it has its own, with a prefix;
// a wildcard's gets a label of its own, as "*" must stay first.
func ownerName(name string) string {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return "_berth-wildcard." + rest
	}
	return "_berth." + name
}
