package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/miekg/dns"
)

// client talks to one server, signing every message with one TSIG key.
type client struct {
	server  string
	keyName string // fully qualified, lower case
	alg     string // miekg/dns's name of the algorithm
	secret  []byte // never logged, never in an error
	timeout time.Duration
}

// provider is the TSIG provider for the client's key.
func (c *client) provider() dns.TsigProvider {
	return hmacKey{name: c.keyName, alg: c.alg, secret: c.secret}
}

// hmacKey signs and verifies with one TSIG key, and only with its name
// and algorithm.
type hmacKey struct {
	name, alg string
	secret    []byte
}

// Generate returns the HMAC of msg.
func (k hmacKey) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	if dns.CanonicalName(t.Hdr.Name) != k.name || dns.CanonicalName(t.Algorithm) != k.alg {
		return nil, fmt.Errorf("TSIG record of key %q (%s), want key %q (%s)", t.Hdr.Name, t.Algorithm, k.name, k.alg)
	}
	var h hash.Hash
	switch k.alg {
	case dns.HmacSHA224:
		h = hmac.New(sha256.New224, k.secret)
	case dns.HmacSHA256:
		h = hmac.New(sha256.New, k.secret)
	case dns.HmacSHA384:
		h = hmac.New(sha512.New384, k.secret)
	case dns.HmacSHA512:
		h = hmac.New(sha512.New, k.secret)
	default:
		return nil, dns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify checks the MAC of t against msg.
func (k hmacKey) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}

// exchange sends q, signed, over TCP and hands each message of the answer
// to each until it returns done (a zone transfer is many messages; other
// answers are one). Every message must carry a valid signature of the
// key. The exchange ends by ctx or after the client's timeout, whichever
// is first. Errors are wrapped in the SDK's kinds: a server that cannot
// be reached is ErrRetryable, a key it refuses ErrPermissionDenied.
func (c *client) exchange(ctx context.Context, q *dns.Msg, each func(*dns.Msg) (done bool, err error)) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	fail := func(what string, err error) error {
		if parent.Err() != nil {
			return fmt.Errorf("%s with %s: %w", what, c.server, parent.Err())
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || ctx.Err() != nil {
			return fmt.Errorf("%s with %s: no answer within %s: %w", what, c.server, c.timeout, sdk.ErrRetryable)
		}
		return fmt.Errorf("%s with %s: %v: %w", what, c.server, err, sdk.ErrRetryable)
	}
	what := opName(q)

	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.server)
	if err != nil {
		return fail(what, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// A cancelled call ends a read or write in progress at once.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	conn := &dns.Conn{Conn: nc}

	q.SetTsig(c.keyName, c.alg, 300, time.Now().Unix())
	wire, mac, err := dns.TsigGenerateWithProvider(q, c.provider(), "", false)
	if err != nil {
		return fmt.Errorf("sign the %s: %v", what, err)
	}
	if _, err := conn.Write(wire); err != nil {
		return fail(what, err)
	}
	for first := true; ; first = false {
		p, err := conn.ReadMsgHeader(nil)
		if err != nil {
			if errors.Is(err, io.EOF) && !first {
				return fail(what, errors.New("the server closed the connection in the middle of the answer"))
			}
			return fail(what, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(p); err != nil {
			return fmt.Errorf("%s with %s: unreadable answer: %v: %w", what, c.server, err, sdk.ErrRetryable)
		}
		if m.Id != q.Id {
			return fmt.Errorf("%s with %s: answer to another query (id %d, want %d): %w", what, c.server, m.Id, q.Id, sdk.ErrRetryable)
		}
		ts := m.IsTsig()
		if ts != nil && ts.Error != dns.RcodeSuccess {
			return keyError{c.keyRefused(what, ts.Error)}
		}
		if ts == nil {
			// A server that refuses a message may answer unsigned;
			// its refusal is all that is taken from it.
			if m.Rcode != dns.RcodeSuccess {
				return c.rcodeError(what, q, m.Rcode)
			}
			return keyError{fmt.Errorf("%s with %s: the answer is not signed with key %q, so it cannot be trusted: %w", what, c.server, c.keyName, sdk.ErrPermissionDenied)}
		}
		if err := dns.TsigVerifyWithProvider(p, c.provider(), mac, !first); err != nil {
			if errors.Is(err, dns.ErrTime) {
				return fmt.Errorf("%s with %s: the answer's TSIG time is outside the allowed skew; check the clocks: %w", what, c.server, sdk.ErrRetryable)
			}
			return keyError{fmt.Errorf("%s with %s: the answer's TSIG signature does not verify with key %q: the key's secret or algorithm differs from the server's: %w", what, c.server, c.keyName, sdk.ErrPermissionDenied)}
		}
		mac = ts.MAC
		// A query for a name that does not exist has an empty answer.
		nxdomain := m.Rcode == dns.RcodeNameError && q.Opcode == dns.OpcodeQuery && q.Question[0].Qtype != dns.TypeAXFR
		if m.Rcode != dns.RcodeSuccess && !nxdomain {
			return c.rcodeError(what, q, m.Rcode)
		}
		done, err := each(m)
		if err != nil || done {
			return err
		}
	}
}

// opName names what q does, for errors.
func opName(q *dns.Msg) string {
	switch {
	case q.Opcode == dns.OpcodeUpdate:
		return "update of zone " + q.Question[0].Name
	case q.Question[0].Qtype == dns.TypeAXFR:
		return "zone transfer of " + q.Question[0].Name
	default:
		return fmt.Sprintf("query %s %s", q.Question[0].Name, dns.TypeToString[q.Question[0].Qtype])
	}
}

// keyRefused is the error of a TSIG error in the server's answer.
func (c *client) keyRefused(what string, code uint16) error {
	name := dns.RcodeToString[int(code)]
	if name == "" {
		name = fmt.Sprintf("TSIG error %d", code)
	}
	hint := "check tsig_key_name, tsig_algorithm and the secret against the server's key"
	if code == dns.RcodeBadTime {
		hint = "the clocks of the gateway and the server differ by more than 5 minutes"
	}
	return fmt.Errorf("%s: server %s refused TSIG key %q (%s): %s: %w", what, c.server, c.keyName, name, hint, sdk.ErrPermissionDenied)
}

// rcodeError maps an answer's RCODE to an error of the SDK's kinds.
func (c *client) rcodeError(what string, q *dns.Msg, rcode int) error {
	name := dns.RcodeToString[rcode]
	zone := q.Question[0].Name
	switch rcode {
	case dns.RcodeNotAuth:
		if q.Opcode == dns.OpcodeUpdate {
			// RFC 2136: the server is not authoritative for the zone
			// (a refused key comes back with a TSIG error, handled
			// before).
			return fmt.Errorf("%s: server %s is not authoritative for %s (NOTAUTH): %w", what, c.server, zone, sdk.ErrNotFound)
		}
		return fmt.Errorf("%s: server %s refused it (NOTAUTH): allow key %q to transfer %s: %w", what, c.server, c.keyName, zone, sdk.ErrPermissionDenied)
	case dns.RcodeRefused:
		return fmt.Errorf("%s: server %s refused it (REFUSED): its policy does not allow key %q this change or zone: %w", what, c.server, c.keyName, sdk.ErrPermissionDenied)
	case dns.RcodeNotZone:
		return fmt.Errorf("%s: server %s says a name is outside zone %s (NOTZONE): %w", what, c.server, zone, sdk.ErrInvalidArgument)
	case dns.RcodeFormatError:
		return fmt.Errorf("%s: server %s could not read the message (FORMERR): %w", what, c.server, sdk.ErrInvalidArgument)
	case dns.RcodeNotImplemented:
		return fmt.Errorf("%s: server %s does not implement it (NOTIMP): %w", what, c.server, sdk.ErrUnimplemented)
	case dns.RcodeYXDomain, dns.RcodeYXRrset, dns.RcodeNXRrset:
		return fmt.Errorf("%s: server %s: a prerequisite failed (%s): %w", what, c.server, name, sdk.ErrFailedPrecondition)
	case dns.RcodeServerFailure:
		return fmt.Errorf("%s: server %s failed (SERVFAIL): %w", what, c.server, sdk.ErrRetryable)
	}
	if name == "" {
		name = fmt.Sprintf("RCODE %d", rcode)
	}
	return fmt.Errorf("%s: server %s answered %s: %w", what, c.server, name, sdk.ErrRetryable)
}

// soa checks that the server is authoritative for zone: its SOA, asked
// for with a signed query, has zone as its owner. A zone the server does
// not serve is sdk.ErrNotFound.
func (c *client) soa(ctx context.Context, zone string) error {
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	q.RecursionDesired = false
	err := c.exchange(ctx, q, func(m *dns.Msg) (bool, error) {
		for _, rr := range m.Answer {
			if soa, ok := rr.(*dns.SOA); ok && m.Authoritative && dns.CanonicalName(soa.Hdr.Name) == zone {
				return true, nil
			}
		}
		return true, fmt.Errorf("server %s is not authoritative for zone %s: %w", c.server, zone, sdk.ErrNotFound)
	})
	if errors.Is(err, sdk.ErrPermissionDenied) && !isKeyError(err) {
		// Knot and BIND answer a query for a zone they do not serve with
		// REFUSED.
		return fmt.Errorf("server %s does not serve zone %s: %w", c.server, zone, sdk.ErrNotFound)
	}
	return err
}

// keyError marks the errors of a refused or mismatching key, so that soa
// can tell them from a refused query.
type keyError struct{ error }

func (e keyError) Unwrap() error { return e.error }

func isKeyError(err error) bool {
	var k keyError
	return errors.As(err, &k)
}
