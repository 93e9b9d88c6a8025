package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berthgw/berth/sdk"
)

// Retry policy for Cloudflare's rate limit (HTTP 429).
const (
	// maxAttempts bounds the requests made for one API call: the first
	// and up to three retries.
	maxAttempts = 4
	// defaultBackoff is the first wait when a 429 has no usable
	// Retry-After; it doubles on each retry.
	defaultBackoff = time.Second
	// maxBackoff caps a wait chosen without Retry-After.
	maxBackoff = 8 * time.Second
)

// maxPages bounds the pages followed when listing records: a server that
// always announces another page cannot keep the plugin listing forever.
const maxPages = 10000

// maxResponse bounds the body read from Cloudflare.
const maxResponse = 32 << 20

// Cloudflare's error codes the plugin tells apart. Cloudflare documents
// them in its API reference and troubleshooting pages.
const (
	codeNoRoute          = 7000  // No route for that URI
	codeBadIdentifier    = 7003  // Could not route to /zones/…, perhaps your object identifier is invalid?
	codeInvalidToken     = 9109  // Invalid access token
	codeUnknownKey       = 9103  // Unknown X-Auth-Key or X-Auth-Email
	codeMissingAuth      = 9106  // Missing X-Auth-Key, X-Auth-Email or Authorization headers
	codeAuthError        = 10000 // Authentication error
	codeAuthFormat       = 6111  // Invalid format for Authorization header
	codeRecordExists     = 81057 // The record already exists.
	codeIdenticalRecord  = 81058 // An identical record already exists.
	codeHostExists       = 81053 // An A, AAAA, or CNAME record with that host already exists.
	codeCNAMEExists      = 81054 // A CNAME record with that host already exists.
	codeRecordNotExists  = 81044 // Record does not exist.
	maxErrorsInAMessage  = 5
	maxCloudflareMessage = 200
)

// client talks to Cloudflare's v4 API with one token. It caches zone ids
// and serializes the changes to each zone made through it.
type client struct {
	http    *http.Client
	base    string
	token   string
	perPage int

	mu    sync.Mutex
	zones map[string]string      // zone name (no trailing dot) → zone id
	locks map[string]*sync.Mutex // zone id → lock held while changing it
}

func newClient(hc *http.Client, base, token string, perPage int) *client {
	return &client{http: hc, base: base, token: token, perPage: perPage,
		zones: map[string]string{}, locks: map[string]*sync.Mutex{}}
}

// envelope is the body of every Cloudflare v4 API answer.
type envelope struct {
	Success    bool            `json:"success"`
	Errors     []cfError       `json:"errors"`
	Messages   json.RawMessage `json:"messages"`
	Result     json.RawMessage `json:"result"`
	ResultInfo *resultInfo     `json:"result_info"`
}

// cfError is one entry of an envelope's errors.
type cfError struct {
	Code       int       `json:"code"`
	Message    string    `json:"message"`
	ErrorChain []cfError `json:"error_chain"`
}

// resultInfo is the paging information of a list.
type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

// apiError is a request Cloudflare refused or could not answer. Its
// message holds Cloudflare's error codes and messages, sanitized and
// stripped of the token; errors.Is matches its kind.
type apiError struct {
	status int
	codes  []int
	msg    string
	kind   error
}

func (e *apiError) Error() string { return e.msg }

// Unwrap returns the error's kind (sdk.ErrNotFound, …), or nil.
func (e *apiError) Unwrap() error { return e.kind }

func (e *apiError) has(code int) bool {
	for _, c := range e.codes {
		if c == code {
			return true
		}
	}
	return false
}

// zoneGone reports whether the error says that a zone id does not exist
// (any more): Cloudflare answers an unknown id in a path with 7003.
func zoneGone(err error) bool {
	var e *apiError
	if !errors.As(err, &e) {
		return false
	}
	return e.has(codeBadIdentifier) || e.has(codeNoRoute) || (e.status == http.StatusNotFound && !e.has(codeRecordNotExists))
}

// recordGone reports whether the error says that a record does not exist.
func recordGone(err error) bool {
	var e *apiError
	return errors.As(err, &e) && e.has(codeRecordNotExists)
}

// redact replaces the token in s: the last line of defence, as no message
// is built from anything that should hold it.
func (c *client) redact(s string) string {
	if len(c.token) >= 4 {
		s = strings.ReplaceAll(s, c.token, "[redacted]")
	}
	return s
}

// fail builds an apiError of kind with a redacted message.
func (c *client) fail(kind error, status int, codes []int, format string, args ...any) *apiError {
	return &apiError{status: status, codes: codes, kind: kind, msg: c.redact(fmt.Sprintf(format, args...))}
}

// do sends one API request, retrying a rate-limited one as Retry-After
// asks while ctx allows, and decodes the envelope's result into out (when
// not nil). what names the request in errors ("list records of zone x").
func (c *client) do(ctx context.Context, what, method, path string, query url.Values, body, out any) (*resultInfo, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", what, err)
		}
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", what, err, sdk.ErrInvalidArgument)
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "berth-plugin-dns-cloudflare/"+Version)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, c.transportErr(ctx, what, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		if err != nil {
			return nil, c.transportErr(ctx, what, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			wait := retryAfter(resp.Header.Get("Retry-After"), attempt)
			if attempt >= maxAttempts {
				return nil, c.fail(sdk.ErrRetryable, resp.StatusCode, nil, "%s: Cloudflare rate-limited %d requests in a row (HTTP 429); try again later", what, attempt)
			}
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
				return nil, c.fail(sdk.ErrRetryable, resp.StatusCode, nil, "%s: Cloudflare rate-limited the request (HTTP 429) and asks to wait %s, longer than the call has left", what, wait)
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, c.fail(sdk.ErrRetryable, resp.StatusCode, nil, "%s: Cloudflare rate-limited the request (HTTP 429) and the call ended while waiting: %v", what, err)
			}
			continue
		}
		return c.decode(what, resp.StatusCode, data, out)
	}
}

// decode reads an answer's envelope into out, or turns it into an error
// of the right kind.
func (c *client) decode(what string, status int, data []byte, out any) (*resultInfo, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		kind := kindOf(status, nil)
		if status/100 == 2 {
			// A 2xx that is not Cloudflare's JSON: something between
			// us and Cloudflare, or an outage page.
			kind = sdk.ErrRetryable
		}
		body := peerText(data, maxCloudflareMessage)
		if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "<") {
			// An error page from a proxy or Cloudflare's edge: its
			// markup says nothing the status does not.
			body = "an HTML page"
		}
		return nil, c.fail(kind, status, nil, "%s: HTTP %d %s with a body that is not Cloudflare's JSON: %s", what, status, http.StatusText(status), body)
	}
	if status/100 != 2 || !env.Success {
		codes := flatCodes(env.Errors)
		return nil, c.fail(kindOf(status, codes), status, codes, "%s: HTTP %d: %s%s", what, status, describe(env.Errors), hint(status, codes))
	}
	if out != nil && len(env.Result) > 0 {
		if err := json.Unmarshal(env.Result, out); err != nil {
			return nil, c.fail(nil, status, nil, "%s: unexpected result from Cloudflare: %v", what, err)
		}
	}
	return env.ResultInfo, nil
}

// flatCodes lists the codes of errs and of their error chains.
func flatCodes(errs []cfError) []int {
	var codes []int
	for _, e := range errs {
		codes = append(codes, e.Code)
		codes = append(codes, flatCodes(e.ErrorChain)...)
	}
	return codes
}

// describe spells Cloudflare's errors for a message: "[81057] The record
// already exists." and so on, each sanitized and bounded.
func describe(errs []cfError) string {
	if len(errs) == 0 {
		return "Cloudflare gave no error detail"
	}
	var parts []string
	for i, e := range errs {
		if i == maxErrorsInAMessage {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		s := fmt.Sprintf("[%d] %s", e.Code, peerText([]byte(e.Message), maxCloudflareMessage))
		if len(e.ErrorChain) > 0 {
			s += " (" + describe(e.ErrorChain) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// kindOf is the SDK error kind of a refusal.
func kindOf(status int, codes []int) error {
	has := func(want ...int) bool {
		for _, c := range codes {
			for _, w := range want {
				if c == w {
					return true
				}
			}
		}
		return false
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden ||
		has(codeInvalidToken, codeUnknownKey, codeMissingAuth, codeAuthError, codeAuthFormat):
		return sdk.ErrPermissionDenied
	case has(codeRecordExists, codeIdenticalRecord):
		return sdk.ErrAlreadyExists
	case has(codeHostExists, codeCNAMEExists):
		return sdk.ErrFailedPrecondition
	case has(codeBadIdentifier, codeNoRoute, codeRecordNotExists) || status == http.StatusNotFound:
		return sdk.ErrNotFound
	case status == http.StatusTooManyRequests || status >= 500:
		return sdk.ErrRetryable
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return sdk.ErrInvalidArgument
	case status == http.StatusConflict:
		return sdk.ErrFailedPrecondition
	}
	return nil
}

// hint adds what the operator can do about a refusal.
func hint(status int, codes []int) string {
	if kindOf(status, codes) == sdk.ErrPermissionDenied {
		return " (Cloudflare refused the API token: check that it is valid and has Zone:Read and DNS:Edit on the zone)"
	}
	for _, c := range codes {
		if c == codeHostExists || c == codeCNAMEExists {
			return " (a CNAME cannot share its name with A, AAAA or CNAME records)"
		}
	}
	return ""
}

// retryAfter is how long to wait before retrying a 429: the Retry-After
// header's seconds or date when it has one, else a backoff that doubles
// with each attempt.
func retryAfter(h string, attempt int) time.Duration {
	h = strings.TrimSpace(h)
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil && secs >= 0 {
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
		return 0
	}
	d := defaultBackoff << (attempt - 1)
	if d > maxBackoff {
		d = maxBackoff
	}
	return d
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transportErr classifies a failure to reach Cloudflare: the call's end
// is passed on as is, a certificate the plugin cannot verify needs the
// operator, anything else (refused, reset, DNS, timeout) is temporary.
func (c *client) transportErr(ctx context.Context, what string, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %s: %w", what, c.redact(err.Error()), ctxErr)
	}
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return c.fail(sdk.ErrFailedPrecondition, 0, nil, "%s: TLS: %v (is the server's CA in ca_file?)", what, err)
	}
	return c.fail(sdk.ErrRetryable, 0, nil, "%s: cannot reach Cloudflare: %v", what, err)
}

// peerText makes a peer's text fit for an error message: valid UTF-8, one
// line, no control characters, at most max bytes.
func peerText(b []byte, max int) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// cfZone is a zone as Cloudflare lists it.
type cfZone struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// zoneID returns the id of the zone named name (normalized), from the
// cache when it has it; cached says so.
func (c *client) zoneID(ctx context.Context, name string) (id string, cached bool, err error) {
	c.mu.Lock()
	id, ok := c.zones[name]
	c.mu.Unlock()
	if ok {
		return id, true, nil
	}
	var found []cfZone
	q := url.Values{"name": {name}, "per_page": {"50"}}
	if _, err := c.do(ctx, "look up zone "+name, http.MethodGet, "/zones", q, nil, &found); err != nil {
		return "", false, err
	}
	var match []cfZone
	for _, z := range found {
		if strings.EqualFold(strings.TrimSuffix(z.Name, "."), name) && validID(z.ID) {
			match = append(match, z)
		}
	}
	if len(match) > 1 {
		// The same name in two accounts the token can read: only an
		// active one is the zone that answers.
		var active []cfZone
		for _, z := range match {
			if z.Status == "active" {
				active = append(active, z)
			}
		}
		match = active
	}
	switch len(match) {
	case 0:
		return "", false, fmt.Errorf("not found in Cloudflare, or the API token cannot read it: %w", sdk.ErrNotFound)
	case 1:
	default:
		return "", false, fmt.Errorf("%d active zones of that name are visible to the API token; scope the token to one account: %w", len(match), sdk.ErrFailedPrecondition)
	}
	c.mu.Lock()
	c.zones[name] = match[0].ID
	c.mu.Unlock()
	return match[0].ID, false, nil
}

// forget drops a cached zone id that Cloudflare no longer knows.
func (c *client) forget(name string) {
	c.mu.Lock()
	delete(c.zones, name)
	c.mu.Unlock()
}

// lock returns the lock of zone id, for the changes made through c.
func (c *client) lock(id string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.locks[id]
	if !ok {
		l = &sync.Mutex{}
		c.locks[id] = l
	}
	return l
}

// validID reports whether an id from Cloudflare is safe in a URL path.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// listRecords lists the records of a zone, following every page. With
// fqdn and typ set it asks Cloudflare for those alone (and checks, in
// case the filter is ignored).
func (c *client) listRecords(ctx context.Context, zoneName, zoneID, fqdn, typ string) ([]cfRecord, error) {
	what := "list records of zone " + zoneName
	filter := url.Values{}
	if fqdn != "" {
		filter.Set("name.exact", fqdn)
		what = fmt.Sprintf("list %s records %s", typ, fqdn)
	}
	if typ != "" {
		filter.Set("type", typ)
	}
	var all []cfRecord
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > maxPages {
			return nil, fmt.Errorf("%s: more than %d pages: %w", what, maxPages, sdk.ErrFailedPrecondition)
		}
		q := url.Values{}
		for k, v := range filter {
			q[k] = v
		}
		q.Set("page", strconv.Itoa(page))
		q.Set("per_page", strconv.Itoa(c.perPage))
		var recs []cfRecord
		info, err := c.do(ctx, what, http.MethodGet, "/zones/"+url.PathEscape(zoneID)+"/dns_records", q, nil, &recs)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			// A record created while listing can shift another onto
			// the next page: count each once.
			if seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			if fqdn != "" && !strings.EqualFold(strings.TrimSuffix(r.Name, "."), fqdn) {
				continue
			}
			if typ != "" && !strings.EqualFold(r.Type, typ) {
				continue
			}
			all = append(all, r)
		}
		if info == nil || page >= info.TotalPages || len(recs) == 0 {
			return all, nil
		}
	}
}

// createRecord creates r in the zone.
func (c *client) createRecord(ctx context.Context, zoneID string, r cfRecord) (cfRecord, error) {
	var out cfRecord
	_, err := c.do(ctx, fmt.Sprintf("create %s record %s", r.Type, r.Name), http.MethodPost,
		"/zones/"+url.PathEscape(zoneID)+"/dns_records", nil, r, &out)
	return out, err
}

// updateRecord changes the record id in place to r (PATCH: the fields
// not sent, such as the record's comment and tags, stay).
func (c *client) updateRecord(ctx context.Context, zoneID, id string, r cfRecord) (cfRecord, error) {
	if !validID(id) {
		return cfRecord{}, fmt.Errorf("record id %q from Cloudflare is not an id", clip(id))
	}
	var out cfRecord
	_, err := c.do(ctx, fmt.Sprintf("update %s record %s", r.Type, r.Name), http.MethodPatch,
		"/zones/"+url.PathEscape(zoneID)+"/dns_records/"+url.PathEscape(id), nil, r, &out)
	return out, err
}

// deleteRecord deletes the record id.
func (c *client) deleteRecord(ctx context.Context, zoneID string, r cfRecord) error {
	if !validID(r.ID) {
		return fmt.Errorf("record id %q from Cloudflare is not an id", clip(r.ID))
	}
	_, err := c.do(ctx, fmt.Sprintf("delete %s record %s", r.Type, r.Name), http.MethodDelete,
		"/zones/"+url.PathEscape(zoneID)+"/dns_records/"+url.PathEscape(r.ID), nil, nil, nil)
	return err
}
