package listquery

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// chunk builds a PodList chunk around raw items.
func chunk(cont string, remaining int, items ...string) []byte {
	meta := `"resourceVersion":"12345"`
	if cont != "" {
		meta += fmt.Sprintf(`,"continue":%q`, cont)
	}
	if remaining > 0 {
		meta += fmt.Sprintf(`,"remainingItemCount":%d`, remaining)
	}
	return []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{` + meta + `},"items":[` + strings.Join(items, ",") + `]}`)
}

// pod is a small item for ordering tests; extra is spliced into the top
// level (e.g. `"spec":{"n":3}`).
func pod(ns, name, extra string) string {
	s := fmt.Sprintf(`{"metadata":{"namespace":%q,"name":%q}`, ns, name)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func mustQuery(t testing.TB, raw string) *Query {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(v)
	if err != nil || q == nil {
		t.Fatalf("Parse(%q) = %v, %v", raw, q, err)
	}
	return q
}

// collect feeds chunks to a new Collector and returns the result.
func collect(t testing.TB, q *Query, lim Limits, chunks ...[]byte) ([]byte, error) {
	t.Helper()
	c := NewCollector(q, lim)
	for i, ch := range chunks {
		next, err := c.Add(ch)
		if err != nil {
			return nil, err
		}
		if (next == "") != (i == len(chunks)-1) {
			t.Fatalf("chunk %d: continue token %q", i, next)
		}
	}
	return c.Result()
}

// k8sList is what a client decodes the response into.
type k8sList struct {
	Kind       string                     `json:"kind"`
	APIVersion string                     `json:"apiVersion"`
	Metadata   map[string]json.RawMessage `json:"metadata"`
	Items      []struct {
		Metadata struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"metadata"`
	} `json:"items"`
	Total *int `json:"total"`
}

func decode(t testing.TB, out []byte) k8sList {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	var l k8sList
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if l.Total == nil {
		t.Fatalf("no total in %s", out)
	}
	return l
}

func names(l k8sList) string {
	var s []string
	for _, it := range l.Items {
		if it.Metadata.Namespace != "" {
			s = append(s, it.Metadata.Namespace+"/"+it.Metadata.Name)
		} else {
			s = append(s, it.Metadata.Name)
		}
	}
	return strings.Join(s, " ")
}

func TestSort(t *testing.T) {
	// Upstream order is deliberately not sorted.
	items := []string{
		pod("", "e", `"spec":{"n":10,"s":"10","t":"2024-01-01T08:00:00Z"}`),
		pod("", "a", `"spec":{"n":9,"s":"9","t":"2024-01-01T10:00:00.5+02:00"}`),
		pod("", "c", `"spec":{"n":-1.5,"s":"-1.5","t":"2024-01-01T08:00:00.25Z"}`),
		pod("", "b", `"spec":{"n":1e2,"s":"1e2","t":"2023-12-31T23:59:59.999999999-05:00"}`),
		pod("", "d", `"spec":{"n":"7","s":"x","t":"not a time"}`),
		pod("", "f", `"spec":{"n":true,"t":1704096000}`),
		pod("", "g", `"spec":{"n":null,"s":null,"t":null}`),
		pod("", "h", `"spec":{"n":9007199254740993,"t":"2024-01-01T08:00:00.1Z"}`),
		pod("", "i", `"spec":{"n":9007199254740992}`),
		pod("", "j", `"spec":{"n":"NaN","s":""}`),
	}
	tests := []struct {
		query string
		want  string
	}{
		{"pageSize=100", "a b c d e f g h i j"},
		{"sortOrder=desc&pageSize=100", "j i h g f e d c b a"},
		// string: byte-wise on the JSON text; missing and null last.
		{"sortName=spec.s&pageSize=100", "j c e b a d f g h i"},
		{"sortName=spec.s&sortOrder=desc&pageSize=100", "d a b e c j f g h i"},
		// number: by value, integers exactly, numeric strings too; the rest last.
		{"sortName=spec.n&sortFunc=number&pageSize=100", "c d a e b i h f g j"},
		{"sortName=spec.n&sortFunc=number&sortOrder=desc&pageSize=100", "h i b e a d c f g j"},
		// time: instants, fractions and offsets; unparseable last.
		// a = 08:00:00.5Z, b = 04:59:59.999999999Z (next day minus), e = 08:00:00Z
		{"sortName=spec.t&sortFunc=time&pageSize=100", "b e h c a d f g i j"},
		{"sortName=spec.t&sortFunc=time&sortOrder=desc&pageSize=100", "a c h e b d f g i j"},
		// missing everywhere: namespace/name tie-break (not reversed by desc).
		{"sortName=spec.absent&sortOrder=desc&pageSize=100", "a b c d e f g h i j"},
	}
	for _, tt := range tests {
		out, err := collect(t, mustQuery(t, tt.query), Limits{}, chunk("", 0, items...))
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		if got := names(decode(t, out)); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.query, got, tt.want)
		}
	}
}

func TestSortTieBreakAndStability(t *testing.T) {
	items := []string{
		pod("ns2", "x", `"spec":{"k":1}`),
		pod("ns1", "y", `"spec":{"k":1}`),
		pod("ns1", "x", `"spec":{"k":1}`),
		pod("ns1", "x", `"spec":{"k":1},"tag":"second"`), // same ns/name: upstream order holds
		pod("ns0", "z", `"spec":{"k":2}`),
	}
	for _, order := range []string{"asc", "desc"} {
		out, err := collect(t, mustQuery(t, "sortName=spec.k&sortFunc=number&sortOrder="+order), Limits{}, chunk("", 0, items...))
		if err != nil {
			t.Fatal(err)
		}
		got := names(decode(t, out))
		want := "ns1/x ns1/x ns1/y ns2/x ns0/z"
		if order == "desc" {
			want = "ns0/z ns1/x ns1/x ns1/y ns2/x"
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", order, got, want)
		}
		first := strings.Index(string(out), `"name":"x"}`)
		second := strings.Index(string(out), `"tag":"second"`)
		if first < 0 || second < 0 || second < first {
			t.Errorf("%s: equal items lost upstream order: %s", order, out)
		}
	}
}

// TestPagingWindowMatchesFullSort checks the bounded heap against a plain
// sort of everything, for every page of a list with many ties.
func TestPagingWindowMatchesFullSort(t *testing.T) {
	var items []string
	for i := range 97 {
		items = append(items, pod(fmt.Sprintf("ns%d", i%3), fmt.Sprintf("p%02d", (i*37)%50), fmt.Sprintf(`"spec":{"k":%d}`, i%7)))
	}
	chunks := [][]byte{chunk("c1", 0, items[:40]...), chunk("c2", 0, items[40:80]...), chunk("", 0, items[80:]...)}
	for _, order := range []string{"asc", "desc"} {
		all, err := collect(t, mustQuery(t, "pageSize=1000&sortName=spec.k&sortFunc=number&sortOrder="+order), Limits{}, chunks...)
		if err != nil {
			t.Fatal(err)
		}
		full := decode(t, all).Items
		for size := 1; size <= 13; size += 4 {
			for num := 1; (num-1)*size <= len(full)+size; num++ {
				out, err := collect(t, mustQuery(t, fmt.Sprintf("pageSize=%d&pageNum=%d&sortName=spec.k&sortFunc=number&sortOrder=%s", size, num, order)), Limits{}, chunks...)
				if err != nil {
					t.Fatal(err)
				}
				l := decode(t, out)
				lo, hi := min((num-1)*size, len(full)), min(num*size, len(full))
				if len(l.Items) != hi-lo || *l.Total != 97 {
					t.Fatalf("%s size %d page %d: %d items, total %d", order, size, num, len(l.Items), *l.Total)
				}
				for i := range l.Items {
					if l.Items[i] != full[lo+i] {
						t.Fatalf("%s size %d page %d item %d differs", order, size, num, i)
					}
				}
			}
		}
	}
}

func TestPaging(t *testing.T) {
	var items []string
	for i := range 25 {
		items = append(items, pod("default", fmt.Sprintf("p%02d", i), ""))
	}
	tests := []struct {
		query string
		want  string
		total int
	}{
		{"pageSize=10", "default/p00 default/p01 default/p02 default/p03 default/p04 default/p05 default/p06 default/p07 default/p08 default/p09", 25},
		{"pageSize=10&pageNum=3", "default/p20 default/p21 default/p22 default/p23 default/p24", 25},
		{"pageSize=10&pageNum=4", "", 25},
		{"pageSize=10&pageNum=999999999", "", 25},
		{"pageSize=5&pageNum=2&sortOrder=desc", "default/p19 default/p18 default/p17 default/p16 default/p15", 25},
		{"pageSize=3&selector=metadata.name~1", "default/p01 default/p10 default/p11", 12},
		{"pageSize=3&pageNum=4&selector=metadata.name~1", "default/p18 default/p19 default/p21", 12},
		{"selector=metadata.name=nothing", "", 0},
	}
	for _, tt := range tests {
		out, err := collect(t, mustQuery(t, tt.query), Limits{}, chunk("a", 0, items[:10]...), chunk("b", 0, items[10:20]...), chunk("", 0, items[20:]...))
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		l := decode(t, out)
		if got := names(l); got != tt.want || *l.Total != tt.total {
			t.Errorf("%s: got %q total %d, want %q total %d", tt.query, got, *l.Total, tt.want, tt.total)
		}
		if tt.want == "" && !strings.Contains(string(out), `"items":[]`) {
			t.Errorf("%s: empty page is not [] in %s", tt.query, out)
		}
	}
}

func TestOutputKeepsUpstreamMetadata(t *testing.T) {
	first := []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"777","continue":"tok1","remainingItemCount":2,"selfLink":"/x"},"items":[` + pod("a", "p1", "") + `],"total":99,"extra":{"k":[1,2]}}`)
	second := []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"777","continue":"tok2","remainingItemCount":1},"items":[` + pod("a", "p2", "") + `]}`)
	last := []byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"777"},"items":[` + pod("a", "p3", "") + `]}`)
	c := NewCollector(mustQuery(t, "pageSize=2"), Limits{})
	for i, ch := range [][]byte{first, second, last} {
		next, err := c.Add(ch)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"tok1", "tok2", ""}[i]; next != want {
			t.Fatalf("chunk %d: next = %q, want %q", i, next, want)
		}
	}
	out, err := c.Result()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"777","selfLink":"/x"},"items":[` + pod("a", "p1", "") + "," + pod("a", "p2", "") + `],"extra":{"k":[1,2]},"total":3}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	l := decode(t, out)
	if l.Kind != "PodList" || l.APIVersion != "v1" || string(l.Metadata["resourceVersion"]) != `"777"` || l.Metadata["continue"] != nil {
		t.Errorf("decoded %+v", l)
	}
}

func TestBufferReuse(t *testing.T) {
	// fasthttp reuses body buffers, and Add reads the body in place: nothing
	// may point into it once Add returns. Scribble over every buffer after
	// Add and compare with a run on untouched input.
	chunks := [][]byte{
		[]byte(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5","continue":"tok"},"items":[` + pod("a", "keep-me", `"spec":{"x":"y","t":"2024-01-01T10:00:00.5+02:00"}`) + "," + pod("b", "drop-me", "") + `],"extra":"e"}`),
		chunk("", 0, pod("a", "c", `"spec":{"x":"z","t":"2023-01-01T10:00:00Z"}`)),
	}
	for _, q := range []string{"pageSize=5", "pageSize=1&sortName=spec.x", "pageSize=1&sortName=spec.t&sortFunc=time", "pageSize=2&selector=metadata.name~keep|c"} {
		var clean []byte
		var err error
		if clean, err = collect(t, mustQuery(t, q), Limits{}, chunks...); err != nil {
			t.Fatal(err)
		}
		c := NewCollector(mustQuery(t, q), Limits{})
		var tokens []string
		for _, ch := range chunks {
			buf := append([]byte(nil), ch...)
			next, err := c.Add(buf)
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, next)
			for i := range buf {
				buf[i] = '#'
			}
		}
		out, err := c.Result()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(clean) || tokens[0] != "tok" {
			t.Errorf("%s: output depends on reused buffers:\n%s\n%s\ntokens %q", q, out, clean, tokens)
		}
	}
}

func TestEmptyAndNullItems(t *testing.T) {
	for _, body := range []string{
		`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`,
		`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":null}`,
	} {
		out, err := collect(t, mustQuery(t, "pageSize=5"), Limits{}, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		want := `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[],"total":0}`
		if string(out) != want {
			t.Errorf("got %s", out)
		}
	}
}

const tableChunk1 = `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"9","continue":"t1"},
"columnDefinitions":[{"name":"Name","type":"string","format":"name"},{"name":"Status","type":"string"}],
"rows":[
 {"cells":["web-2","Running"],"object":{"kind":"Pod","metadata":{"name":"web-2","namespace":"shop","labels":{"app":"web"}},"status":{"phase":"Running"}}},
 {"cells":["db-0","Pending"],"object":{"kind":"Pod","metadata":{"name":"db-0","namespace":"shop","labels":{"app":"db"}},"status":{"phase":"Pending"}}}
]}`

const tableChunk2 = `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"9"},
"columnDefinitions":[{"name":"Name","type":"string","format":"name"},{"name":"Status","type":"string"}],
"rows":[
 {"cells":["web-1","Running"],"object":{"kind":"Pod","metadata":{"name":"web-1","namespace":"shop","labels":{"app":"web"}},"status":{"phase":"Running"}}},
 {"cells":["no-object","?"]}
]}`

func TestTable(t *testing.T) {
	tests := []struct {
		query string
		cells string
		total int
	}{
		{"pageSize=10", "db-0 web-1 web-2 no-object", 4},
		{"selector=metadata.labels.app=web", "web-1 web-2", 2},
		{"selector=status.phase!=Pending&sortOrder=desc", "web-2 web-1 no-object", 3},
		{"pageSize=1&pageNum=2&selector=status.phase=Running", "web-2", 2},
	}
	for _, tt := range tests {
		out, err := collect(t, mustQuery(t, tt.query), Limits{}, []byte(tableChunk1), []byte(tableChunk2))
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		var tab struct {
			Kind              string            `json:"kind"`
			Metadata          map[string]string `json:"metadata"`
			ColumnDefinitions []struct {
				Name string `json:"name"`
			} `json:"columnDefinitions"`
			Rows []struct {
				Cells []string `json:"cells"`
			} `json:"rows"`
			Total int `json:"total"`
		}
		if err := json.Unmarshal(out, &tab); err != nil {
			t.Fatalf("%s: %v\n%s", tt.query, err, out)
		}
		var got []string
		for _, r := range tab.Rows {
			got = append(got, r.Cells[0])
		}
		if strings.Join(got, " ") != tt.cells || tab.Total != tt.total {
			t.Errorf("%s: got %v total %d, want %s total %d", tt.query, got, tab.Total, tt.cells, tt.total)
		}
		if tab.Kind != "Table" || len(tab.ColumnDefinitions) != 2 || tab.Metadata["resourceVersion"] != "9" || tab.Metadata["continue"] != "" {
			t.Errorf("%s: header not kept: %s", tt.query, out)
		}
		if strings.Contains(string(out), `"items"`) {
			t.Errorf("%s: Table output has items: %s", tt.query, out)
		}
	}
}

func TestTooLarge(t *testing.T) {
	c1 := chunk("more", 0, pod("a", "1", ""), pod("a", "2", ""))
	c2 := chunk("", 0, pod("a", "3", ""))
	tests := []struct {
		name   string
		lim    Limits
		chunks [][]byte
	}{
		{"bytes in the first chunk", Limits{MaxBytes: int64(len(c1)) - 1}, [][]byte{c1, c2}},
		{"bytes in a later chunk", Limits{MaxBytes: int64(len(c1)) + 10}, [][]byte{c1, c2}},
		{"items in a later chunk", Limits{MaxItems: 2}, [][]byte{c1, c2}},
		{"items in the first chunk", Limits{MaxItems: 1}, [][]byte{c1, c2}},
		{"items announced by remainingItemCount", Limits{MaxItems: 5}, [][]byte{chunk("more", 4, pod("a", "1", ""), pod("a", "2", ""))}},
	}
	for _, tt := range tests {
		c := NewCollector(mustQuery(t, "pageSize=1"), tt.lim)
		var err error
		for _, ch := range tt.chunks {
			if _, err = c.Add(ch); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", tt.name, err)
		}
		if _, err2 := c.Add(c2); !errors.Is(err2, ErrTooLarge) {
			t.Errorf("%s: error is not sticky: %v", tt.name, err2)
		}
		if _, err2 := c.Result(); !errors.Is(err2, ErrTooLarge) {
			t.Errorf("%s: Result: %v", tt.name, err2)
		}
	}
	// Exactly at the limits is fine.
	if _, err := collect(t, mustQuery(t, "pageSize=1"), Limits{MaxBytes: int64(len(c1) + len(c2)), MaxItems: 3}, c1, c2); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func TestUpstreamErrors(t *testing.T) {
	good := chunk("more", 0, pod("a", "1", ""))
	tests := []struct {
		name   string
		chunks []string
		want   error
	}{
		{"truncated", []string{`{"kind":"PodList","items":[{"metadata":{}}`}, ErrMalformed},
		{"not JSON", []string{`<html>`}, ErrMalformed},
		{"empty body", []string{``}, ErrMalformed},
		{"array", []string{`[{"a":1}]`}, ErrMalformed},
		{"items not an array", []string{`{"kind":"PodList","metadata":{},"items":{"a":1}}`}, ErrMalformed},
		{"item not an object", []string{`{"kind":"PodList","metadata":{},"items":[1]}`}, ErrMalformed},
		{"metadata not an object", []string{`{"kind":"PodList","metadata":"x","items":[]}`}, ErrMalformed},
		{"kinds differ", []string{string(good), `{"kind":"ServiceList","metadata":{},"items":[]}`}, ErrMalformed},
		{"second chunk broken", []string{string(good), `{"kind":"PodList",`}, ErrMalformed},
		{"single object", []string{pod("a", "b", "")}, ErrNotList},
		{"status", []string{`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods is forbidden","code":403}`}, ErrNotList},
	}
	for _, tt := range tests {
		c := NewCollector(mustQuery(t, "pageSize=1"), Limits{})
		var err error
		for _, ch := range tt.chunks {
			if _, err = c.Add([]byte(ch)); err != nil {
				break
			}
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestMisuse(t *testing.T) {
	c := NewCollector(mustQuery(t, "pageSize=1"), Limits{})
	if _, err := c.Add(chunk("more", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Result(); err == nil {
		t.Error("Result before the last chunk succeeded")
	}
	if _, err := c.Add(chunk("", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(chunk("", 0)); err == nil {
		t.Error("Add after the last chunk succeeded")
	}
	if _, err := NewCollector(mustQuery(t, "pageSize=1"), Limits{}).Result(); err == nil {
		t.Error("Result with no chunks succeeded")
	}
}

func TestHandMadeQuery(t *testing.T) {
	items := []string{pod("", "b", `"spec":{"n":2}`), pod("", "a", `"spec":{"n":10}`)}
	out, err := collect(t, &Query{SortName: "spec.n", SortFunc: SortNumber, SortOrder: Desc}, Limits{}, chunk("", 0, items...))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(decode(t, out)); got != "a b" {
		t.Errorf("got %q", got)
	}
	for _, q := range []*Query{{SortName: "a..b"}, {SortFunc: "x"}, {SortOrder: "up"}} {
		c := NewCollector(q, Limits{})
		var pe *ParamError
		if _, err := c.Add(chunk("", 0)); !errors.As(err, &pe) {
			t.Errorf("%+v: err = %v, want *ParamError", q, err)
		}
	}
}
