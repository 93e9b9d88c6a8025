// Package cftest is a fake of the part of Cloudflare's v4 API that the
// dns-cloudflare plugin uses. It exists because Cloudflare cannot be
// reached from the machines the tests run on: it is a local HTTPS server
// (net/http/httptest) answering the documented requests the way Cloudflare
// documents its answers, NOT Cloudflare itself. It implements:
//
//	GET    /client/v4/zones?name=<zone>
//	GET    /client/v4/zones/{zone_id}/dns_records?page=N&per_page=M[&type=T][&name.exact=N]
//	POST   /client/v4/zones/{zone_id}/dns_records
//	PUT    /client/v4/zones/{zone_id}/dns_records/{id}
//	PATCH  /client/v4/zones/{zone_id}/dns_records/{id}
//	DELETE /client/v4/zones/{zone_id}/dns_records/{id}
//
// with Cloudflare's envelope ({success, errors: [{code, message}],
// messages, result, result_info}), bearer-token checks, paging, and the
// record checks whose codes Cloudflare documents: 81057 (the record
// already exists), 81058 (an identical record already exists), 81053 and
// 81054 (a CNAME shares its name with A, AAAA or CNAME records), 81044
// (record does not exist), 7003/7000 (unknown zone id), 9109 (invalid
// token), 10000 (authentication error). Content checks (addresses, TTL
// range, proxying, comment length) answer 1004 "DNS Validation Error" with
// an error_chain entry describing the problem; the chain's codes are this
// fake's, not verified against Cloudflare. Tests can make it answer 429
// with Retry-After or 5xx, and read every request it received.
package cftest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Forever makes RateLimit or Fail apply to every request from now on.
const Forever = -1

// Request is what the server saw of one request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Data is the structured content of SRV and CAA records.
type Data struct {
	Priority *int   `json:"priority,omitempty"`
	Weight   *int   `json:"weight,omitempty"`
	Port     *int   `json:"port,omitempty"`
	Target   string `json:"target,omitempty"`
	Flags    *int   `json:"flags,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Value    string `json:"value,omitempty"`
}

// Record is a DNS record as Cloudflare's API returns it.
type Record struct {
	ID         string         `json:"id"`
	ZoneID     string         `json:"zone_id"`
	ZoneName   string         `json:"zone_name"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Content    string         `json:"content"`
	Proxiable  bool           `json:"proxiable"`
	Proxied    bool           `json:"proxied"`
	TTL        int            `json:"ttl"`
	Priority   *int           `json:"priority,omitempty"`
	Data       *Data          `json:"data,omitempty"`
	Comment    *string        `json:"comment"`
	Tags       []string       `json:"tags"`
	Meta       map[string]any `json:"meta"`
	CreatedOn  string         `json:"created_on"`
	ModifiedOn string         `json:"modified_on"`
}

type zone struct {
	id, name string
	records  []Record
}

// Server is the fake API. Its zero value is not usable; call Start.
type Server struct {
	*httptest.Server
	// BaseURL is the API's base, https://127.0.0.1:port/client/v4.
	BaseURL string
	// CAFile holds the server's certificate as a PEM root, for ca_file.
	CAFile string
	// Token is the API token the server accepts for everything.
	Token string
	// ReadOnlyToken is accepted for reads; writes with it are refused as
	// for a token without DNS:Edit.
	ReadOnlyToken string

	mu         sync.Mutex
	zones      map[string]*zone // by id
	requests   []Request
	limited    int
	retryAfter string
	failing    int
	failStatus int
}

// Start starts a server accepting token; it stops when the test ends.
func Start(t testing.TB, token string) *Server {
	t.Helper()
	s := &Server{Token: token, ReadOnlyToken: token + "-read-only", zones: map[string]*zone{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	s.BaseURL = s.URL + "/client/v4"
	s.CAFile = filepath.Join(t.TempDir(), "cftest-ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(s.CAFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AddZone adds a zone (name with or without the trailing dot) and returns
// its id.
func (s *Server) AddZone(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := &zone{id: newID(), name: strings.ToLower(strings.TrimSuffix(name, "."))}
	s.zones[z.id] = z
	return z.id
}

// RemoveZone deletes a zone and its records.
func (s *Server) RemoveZone(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if z := s.zoneByName(name); z != nil {
		delete(s.zones, z.id)
	}
}

func (s *Server) zoneByName(name string) *zone {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, z := range s.zones {
		if z.name == name {
			return z
		}
	}
	return nil
}

// Seed creates a record in a zone directly, with the checks of a POST,
// and fails the test if they refuse it. In is the POST body.
func (s *Server) Seed(t testing.TB, zoneName string, in map[string]any) Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByName(zoneName)
	if z == nil {
		t.Fatalf("cftest: no zone %s", zoneName)
	}
	// Through JSON, as a request body would come.
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	body, fail := decodeObject(raw)
	if fail != nil {
		t.Fatalf("cftest: seed %v: %+v", in, fail.errors)
	}
	r, fail := s.create(z, body)
	if fail != nil {
		t.Fatalf("cftest: seed %v: %+v", in, fail.errors)
	}
	return r
}

// Records returns the records of a zone, in the order lists give them.
func (s *Server) Records(zoneName string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneByName(zoneName)
	if z == nil {
		return nil
	}
	return slices.Clone(sorted(z.records))
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// RateLimit answers the next n requests (Forever: all) with HTTP 429 and
// the header Retry-After: retryAfter (none when empty).
func (s *Server) RateLimit(n int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited, s.retryAfter = n, retryAfter
}

// Fail answers the next n requests (Forever: all) with status, a server
// error: 502 and 504 with an HTML page as Cloudflare's edge does, others
// with the JSON envelope.
func (s *Server) Fail(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing, s.failStatus = n, status
}

// cfErr is an entry of the envelope's errors.
type cfErr struct {
	Code       int     `json:"code"`
	Message    string  `json:"message"`
	ErrorChain []cfErr `json:"error_chain,omitempty"`
}

// failure is a refusal: an HTTP status and the envelope's errors.
type failure struct {
	status int
	errors []cfErr
}

func refuse(status, code int, msg string) *failure {
	return &failure{status: status, errors: []cfErr{{Code: code, Message: msg}}}
}

// invalid is Cloudflare's DNS validation error with one cause.
func invalid(code int, msg string) *failure {
	return &failure{status: http.StatusBadRequest, errors: []cfErr{{Code: 1004, Message: "DNS Validation Error", ErrorChain: []cfErr{{Code: code, Message: msg}}}}}
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeOK(w http.ResponseWriter, result any, info *resultInfo) {
	body := map[string]any{"success": true, "errors": []cfErr{}, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	writeJSON(w, http.StatusOK, body)
}

func writeFail(w http.ResponseWriter, f *failure) {
	writeJSON(w, f.status, map[string]any{"success": false, "errors": f.errors, "messages": []any{}, "result": nil})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})

	if s.limited != 0 {
		if s.limited > 0 {
			s.limited--
		}
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		writeFail(w, refuse(http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed"))
		return
	}
	if s.failing != 0 {
		if s.failing > 0 {
			s.failing--
		}
		if s.failStatus == http.StatusBadGateway || s.failStatus == http.StatusGatewayTimeout {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(s.failStatus)
			fmt.Fprintf(w, "<html><head><title>%d</title></head><body><center><h1>%d %s</h1></center><hr><center>cloudflare</center></body></html>\n",
				s.failStatus, s.failStatus, http.StatusText(s.failStatus))
			return
		}
		writeFail(w, refuse(s.failStatus, 10001, "Service temporarily unavailable"))
		return
	}

	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	switch {
	case auth == "":
		writeFail(w, refuse(http.StatusBadRequest, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"))
		return
	case !ok || token == "" || strings.ContainsAny(token, " \t"):
		writeFail(w, &failure{status: http.StatusBadRequest, errors: []cfErr{{Code: 6003, Message: "Invalid request headers",
			ErrorChain: []cfErr{{Code: 6111, Message: "Invalid format for Authorization header"}}}}})
		return
	case token == s.Token:
	case token == s.ReadOnlyToken && r.Method == http.MethodGet:
	case token == s.ReadOnlyToken:
		writeFail(w, refuse(http.StatusForbidden, 10000, "Authentication error"))
		return
	default:
		writeFail(w, refuse(http.StatusForbidden, 9109, "Invalid access token"))
		return
	}

	path, ok := strings.CutPrefix(r.URL.Path, "/client/v4/")
	if !ok {
		writeFail(w, noRoute(r.URL.Path))
		return
	}
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 1 && parts[0] == "zones" && r.Method == http.MethodGet:
		s.listZones(w, r)
	case len(parts) >= 3 && parts[0] == "zones" && parts[2] == "dns_records":
		z := s.zones[parts[1]]
		if z == nil {
			writeFail(w, &failure{status: http.StatusBadRequest, errors: []cfErr{
				{Code: 7003, Message: fmt.Sprintf("Could not route to /zones/%s/dns_records, perhaps your object identifier is invalid?", parts[1])},
				{Code: 7000, Message: "No route for that URI"}}})
			return
		}
		switch {
		case len(parts) == 3 && r.Method == http.MethodGet:
			s.listRecords(w, r, z)
		case len(parts) == 3 && r.Method == http.MethodPost:
			in, f := decodeObject(body)
			if f == nil {
				var rec Record
				if rec, f = s.create(z, in); f == nil {
					writeOK(w, rec, nil)
					return
				}
			}
			writeFail(w, f)
		case len(parts) == 4 && (r.Method == http.MethodPut || r.Method == http.MethodPatch):
			in, f := decodeObject(body)
			if f == nil {
				var rec Record
				if rec, f = s.update(z, parts[3], in, r.Method == http.MethodPatch); f == nil {
					writeOK(w, rec, nil)
					return
				}
			}
			writeFail(w, f)
		case len(parts) == 4 && r.Method == http.MethodDelete:
			i := slices.IndexFunc(z.records, func(rec Record) bool { return rec.ID == parts[3] })
			if i < 0 {
				writeFail(w, refuse(http.StatusNotFound, 81044, "Record does not exist."))
				return
			}
			z.records = slices.Delete(z.records, i, i+1)
			writeOK(w, map[string]string{"id": parts[3]}, nil)
		default:
			writeFail(w, noRoute(r.URL.Path))
		}
	default:
		writeFail(w, noRoute(r.URL.Path))
	}
}

func noRoute(path string) *failure {
	return refuse(http.StatusNotFound, 7000, "No route for that URI")
}

func decodeObject(body []byte) (map[string]any, *failure) {
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		return nil, refuse(http.StatusBadRequest, 9207, "Request body is invalid.")
	}
	return in, nil
}

// paging reads page and per_page as Cloudflare documents them: page from
// 1, per_page from 5 to 5000000, defaults 1 and 100 (zones: at most 50).
func paging(q url.Values, maxPer int) (page, per int, f *failure) {
	page, per = 1, 100
	if maxPer < per {
		per = maxPer
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, refuse(http.StatusBadRequest, 1004, "page must be a number of at least 1")
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > maxPer {
			return 0, 0, refuse(http.StatusBadRequest, 1004, fmt.Sprintf("per_page must be a number from 5 to %d", maxPer))
		}
		per = n
	}
	return page, per, nil
}

func pageOf[T any](all []T, page, per int) ([]T, *resultInfo) {
	total := len(all)
	pages := (total + per - 1) / per
	lo := min((page-1)*per, total)
	hi := min(lo+per, total)
	out := slices.Clone(all[lo:hi])
	if out == nil {
		out = []T{}
	}
	return out, &resultInfo{Page: page, PerPage: per, Count: len(out), TotalCount: total, TotalPages: pages}
}

func (s *Server) listZones(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, per, f := paging(q, 50)
	if f != nil {
		writeFail(w, f)
		return
	}
	type zoneJSON struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	var all []zoneJSON
	for _, z := range s.zones {
		if name := q.Get("name"); name == "" || strings.EqualFold(name, z.name) {
			all = append(all, zoneJSON{ID: z.id, Name: z.name, Status: "active"})
		}
	}
	slices.SortFunc(all, func(a, b zoneJSON) int { return strings.Compare(a.Name, b.Name) })
	out, info := pageOf(all, page, per)
	writeOK(w, out, info)
}

func sorted(recs []Record) []Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Content, b.Content); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request, z *zone) {
	q := r.URL.Query()
	page, per, f := paging(q, 5000000)
	if f != nil {
		writeFail(w, f)
		return
	}
	name := q.Get("name.exact")
	if name == "" {
		name = q.Get("name")
	}
	var all []Record
	for _, rec := range sorted(z.records) {
		if (name == "" || strings.EqualFold(rec.Name, name)) && (q.Get("type") == "" || rec.Type == strings.ToUpper(q.Get("type"))) {
			all = append(all, rec)
		}
	}
	out, info := pageOf(all, page, per)
	writeOK(w, out, info)
}

// create checks a POST body and adds the record.
func (s *Server) create(z *zone, in map[string]any) (Record, *failure) {
	rec, f := s.build(z, Record{}, in)
	if f != nil {
		return Record{}, f
	}
	rec.ID = newID()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	rec.CreatedOn, rec.ModifiedOn = now, now
	z.records = append(z.records, rec)
	return rec, nil
}

// update applies a PUT (whole record) or PATCH (the fields given).
func (s *Server) update(z *zone, id string, in map[string]any, patch bool) (Record, *failure) {
	i := slices.IndexFunc(z.records, func(rec Record) bool { return rec.ID == id })
	if i < 0 {
		return Record{}, refuse(http.StatusNotFound, 81044, "Record does not exist.")
	}
	base := Record{ID: id, CreatedOn: z.records[i].CreatedOn}
	if patch {
		base = z.records[i]
	}
	rec, f := s.build(z, base, in)
	if f != nil {
		return Record{}, f
	}
	rec.ModifiedOn = time.Now().UTC().Format(time.RFC3339Nano)
	z.records[i] = rec
	return rec, nil
}

var proxiable = map[string]bool{"A": true, "AAAA": true, "CNAME": true}

// build applies the fields of in to base and checks the result as
// Cloudflare checks a record, against the zone's other records.
func (s *Server) build(z *zone, base Record, in map[string]any) (Record, *failure) {
	rec := base
	rec.ZoneID, rec.ZoneName = z.id, z.name
	if rec.Meta == nil {
		rec.Meta = map[string]any{}
	}
	if rec.Tags == nil {
		rec.Tags = []string{}
	}
	str := func(k string) (string, bool, *failure) {
		v, ok := in[k]
		if !ok || v == nil {
			return "", false, nil
		}
		sv, isStr := v.(string)
		if !isStr {
			return "", false, invalid(9000, k+" must be a string")
		}
		return sv, true, nil
	}
	num := func(k string) (int, bool, *failure) {
		v, ok := in[k]
		if !ok || v == nil {
			return 0, false, nil
		}
		fv, isNum := v.(float64)
		if !isNum || fv != float64(int(fv)) {
			return 0, false, invalid(9000, k+" must be an integer")
		}
		return int(fv), true, nil
	}
	if v, ok, f := str("type"); f != nil {
		return rec, f
	} else if ok {
		rec.Type = strings.ToUpper(v)
	}
	if v, ok, f := str("name"); f != nil {
		return rec, f
	} else if ok {
		rec.Name = v
	}
	if v, ok, f := str("content"); f != nil {
		return rec, f
	} else if ok {
		rec.Content = v
	}
	if v, ok, f := num("ttl"); f != nil {
		return rec, f
	} else if ok {
		rec.TTL = v
	}
	if v, ok, f := num("priority"); f != nil {
		return rec, f
	} else if ok {
		rec.Priority = &v
	}
	if v, ok := in["proxied"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return rec, invalid(9000, "proxied must be a boolean")
		}
		rec.Proxied = b
	}
	if v, ok, f := str("comment"); f != nil {
		return rec, f
	} else if ok {
		if len(v) > 100 {
			return rec, invalid(9200, "DNS record comment is too long: at most 100 characters")
		}
		rec.Comment = &v
	}
	if v, ok := in["data"]; ok && v != nil {
		raw, _ := json.Marshal(v)
		var d Data
		if err := json.Unmarshal(raw, &d); err != nil {
			return rec, invalid(9000, "data is invalid")
		}
		rec.Data = &d
	}

	if rec.Type == "" {
		return rec, invalid(9000, "DNS record type is invalid")
	}
	// Names: "@" is the apex; a name not ending in the zone is taken as
	// relative to it, as Cloudflare does.
	name := strings.ToLower(strings.TrimSuffix(rec.Name, "."))
	switch {
	case name == "":
		return rec, invalid(9005, "DNS record name is required")
	case name == "@":
		name = z.name
	case name != z.name && !strings.HasSuffix(name, "."+z.name):
		name += "." + z.name
	}
	if len(name) > 253 || strings.Contains(name, "..") || strings.ContainsAny(name, " \t\"") {
		return rec, invalid(9005, "DNS name is invalid")
	}
	rec.Name = name
	if rec.TTL == 0 {
		rec.TTL = 1
	}
	if rec.TTL != 1 && (rec.TTL < 60 || rec.TTL > 86400) {
		return rec, invalid(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
	}
	rec.Proxiable = proxiable[rec.Type]
	if rec.Proxied && !rec.Proxiable {
		return rec, invalid(9004, "This record type cannot be proxied.")
	}
	host := func(v string) (string, bool) {
		v = strings.ToLower(strings.TrimSuffix(v, "."))
		return v, v != "" && len(v) <= 253 && !strings.Contains(v, "..") && !strings.ContainsAny(v, " \t\"/")
	}
	switch rec.Type {
	case "A":
		if a, err := netip.ParseAddr(rec.Content); err != nil || !a.Is4() {
			return rec, invalid(9005, "Content for A record must be a valid IPv4 address.")
		}
		rec.Priority, rec.Data = nil, nil
	case "AAAA":
		a, err := netip.ParseAddr(rec.Content)
		if err != nil || !a.Is6() {
			return rec, invalid(9006, "Content for AAAA record must be a valid IPv6 address.")
		}
		rec.Content = a.String()
		rec.Priority, rec.Data = nil, nil
	case "CNAME", "NS", "PTR":
		h, ok := host(rec.Content)
		if !ok {
			return rec, invalid(9007, "Content for "+rec.Type+" record is invalid.")
		}
		rec.Content, rec.Priority, rec.Data = h, nil, nil
	case "MX":
		h, ok := host(rec.Content)
		if !ok {
			return rec, invalid(9007, "Content for MX record is invalid.")
		}
		if rec.Priority == nil || *rec.Priority < 0 || *rec.Priority > 65535 {
			return rec, invalid(9100, "MX records require a priority from 0 to 65535.")
		}
		rec.Content, rec.Data = h, nil
	case "TXT":
		if rec.Content == "" || len(rec.Content) > 2048 {
			return rec, invalid(9100, "Content for TXT record must be 1 to 2048 characters.")
		}
		rec.Priority, rec.Data = nil, nil
	case "SRV":
		d := rec.Data
		if d == nil || d.Priority == nil || d.Weight == nil || d.Port == nil || d.Target == "" {
			return rec, invalid(9101, "SRV records require data with priority, weight, port and target.")
		}
		labels := strings.Split(rec.Name, ".")
		if len(labels) < 3 || !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return rec, invalid(9101, "SRV record name must start with _service._proto.")
		}
		target, ok := host(d.Target)
		if d.Target == "." {
			target, ok = ".", true
		}
		if !ok || *d.Port < 0 || *d.Port > 65535 || *d.Weight < 0 || *d.Weight > 65535 || *d.Priority < 0 || *d.Priority > 65535 {
			return rec, invalid(9101, "SRV data is invalid.")
		}
		d.Target = target
		prio := *d.Priority
		rec.Priority = &prio
		rec.Content = fmt.Sprintf("%d %d %s", *d.Weight, *d.Port, target)
	case "CAA":
		d := rec.Data
		if d == nil || d.Flags == nil || d.Tag == "" || d.Value == "" {
			return rec, invalid(9102, "CAA records require data with flags, tag and value.")
		}
		rec.Priority = nil
		rec.Content = fmt.Sprintf("%d %s %q", *d.Flags, d.Tag, d.Value)
	default:
		return rec, invalid(9000, "DNS record type is invalid or not supported by this fake")
	}

	for _, o := range z.records {
		if o.ID == rec.ID || o.Name != rec.Name {
			continue
		}
		if o.Type == rec.Type && o.Content == rec.Content && eqPrio(o.Priority, rec.Priority) {
			if proxiable[rec.Type] {
				return rec, refuse(http.StatusBadRequest, 81057, "Record already exists.")
			}
			return rec, refuse(http.StatusBadRequest, 81058, "An identical record already exists.")
		}
		if rec.Type == "CNAME" && proxiable[o.Type] {
			return rec, refuse(http.StatusBadRequest, 81053, "An A, AAAA, or CNAME record with that host already exists.")
		}
		if o.Type == "CNAME" && proxiable[rec.Type] {
			return rec, refuse(http.StatusBadRequest, 81054, "A CNAME record with that host already exists.")
		}
	}
	return rec, nil
}

func eqPrio(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
