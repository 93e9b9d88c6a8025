package listquery

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseNoParams(t *testing.T) {
	for _, raw := range []string{"", "limit=5", "labelSelector=app%3Dweb&fieldSelector=status.phase%3DRunning", "watch=1&pagesize=3"} {
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(v)
		if q != nil || err != nil {
			t.Errorf("Parse(%q) = %v, %v; want nil, nil", raw, q, err)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	for _, raw := range []string{"pageNum=1", "sortOrder=asc", "selector=a%3Db", "pageSize=10"} {
		v, _ := url.ParseQuery(raw)
		q, err := Parse(v)
		if err != nil {
			t.Fatalf("Parse(%q): %v", raw, err)
		}
		if q.PageSize != 10 || q.PageNum != 1 || q.SortName != "metadata.name" || q.SortOrder != Asc || q.SortFunc != SortString {
			t.Errorf("Parse(%q) = %+v; want defaults", raw, q)
		}
		if q.sortPath == nil || q.sortPath.text != "metadata.name" {
			t.Errorf("Parse(%q): sort path not compiled", raw)
		}
	}
}

func TestParseValues(t *testing.T) {
	v := url.Values{
		"selector":  {"metadata.namespace=default,metadata.name~web|api"},
		"pageSize":  {"25"},
		"pageNum":   {"3"},
		"sortName":  {"metadata.creationTimestamp"},
		"sortOrder": {"desc"},
		"sortFunc":  {"time"},
		"limit":     {"500"},
	}
	q, err := ParseOptions{MaxPageSize: 50}.Parse(v)
	if err != nil {
		t.Fatal(err)
	}
	if q.PageSize != 25 || q.PageNum != 3 || q.SortName != "metadata.creationTimestamp" || q.SortOrder != Desc || q.SortFunc != SortTime {
		t.Errorf("got %+v", q)
	}
	if got := q.Selector.String(); got != "metadata.namespace=default,metadata.name~web|api" {
		t.Errorf("selector = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		query string
		opts  ParseOptions
		param string
	}{
		{"pageSize=0", ParseOptions{}, "pageSize"},
		{"pageSize=-1", ParseOptions{}, "pageSize"},
		{"pageSize=abc", ParseOptions{}, "pageSize"},
		{"pageSize=", ParseOptions{}, "pageSize"},
		{"pageSize=%2B5", ParseOptions{}, "pageSize"},
		{"pageSize=5.0", ParseOptions{}, "pageSize"},
		{"pageSize=%205", ParseOptions{}, "pageSize"},
		{"pageSize=1001", ParseOptions{}, "pageSize"},
		{"pageSize=51", ParseOptions{MaxPageSize: 50}, "pageSize"},
		{"pageSize=99999999999999999999", ParseOptions{}, "pageSize"},
		{"pageSize=1&pageSize=2", ParseOptions{}, "pageSize"},
		{"pageNum=0", ParseOptions{}, "pageNum"},
		{"pageNum=-3", ParseOptions{}, "pageNum"},
		{"pageNum=x", ParseOptions{}, "pageNum"},
		{"pageNum=1e3", ParseOptions{}, "pageNum"},
		{"pageNum=10000000000", ParseOptions{}, "pageNum"},
		{"sortOrder=up", ParseOptions{}, "sortOrder"},
		{"sortOrder=ASC", ParseOptions{}, "sortOrder"},
		{"sortOrder=", ParseOptions{}, "sortOrder"},
		{"sortFunc=foo", ParseOptions{}, "sortFunc"},
		{"sortFunc=", ParseOptions{}, "sortFunc"},
		{"sortName=", ParseOptions{}, "sortName"},
		{"sortName=metadata..name", ParseOptions{}, "sortName"},
		{"sortName=.metadata", ParseOptions{}, "sortName"},
		{"sortName=metadata.", ParseOptions{}, "sortName"},
		{"sortName=metadata.na%20me", ParseOptions{}, "sortName"},
		{"sortName=a|b", ParseOptions{}, "sortName"},
		{"selector=", ParseOptions{}, "selector"},
		{"selector=%20", ParseOptions{}, "selector"},
		{"selector=a%3Db,,c%3Dd", ParseOptions{}, "selector"},
		{"selector=a%3Db,", ParseOptions{}, "selector"},
		{"selector=,a%3Db", ParseOptions{}, "selector"},
		{"selector=metadata.name", ParseOptions{}, "selector"},
		{"selector=%3Dweb", ParseOptions{}, "selector"},
		{"selector=%20~web", ParseOptions{}, "selector"},
		{"selector=!%3Dweb", ParseOptions{}, "selector"},
		{"selector=metadata..name%3Dx", ParseOptions{}, "selector"},
		{"selector=metadata.labels.%3Dx", ParseOptions{}, "selector"},
		{"selector=a!b%3Dc", ParseOptions{}, "selector"},
		{"selector=a%3Db&selector=c%3Dd", ParseOptions{}, "selector"},
		{"selector=" + strings.Repeat("a", maxSelectorLen+1), ParseOptions{}, "selector"},
		{"selector=%ff%3Db", ParseOptions{}, "selector"},
		// The first bad parameter is reported even if others are fine.
		{"pageNum=2&sortFunc=bogus", ParseOptions{}, "sortFunc"},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatalf("%q: %v", tt.query, err)
		}
		q, err := tt.opts.Parse(v)
		var pe *ParamError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %+v, %v; want *ParamError", tt.query, q, err)
			continue
		}
		if q != nil {
			t.Errorf("Parse(%q) returned a query with an error", tt.query)
		}
		if pe.Param != tt.param {
			t.Errorf("Parse(%q): error names %q, want %q (%v)", tt.query, pe.Param, tt.param, pe)
		}
		if !strings.Contains(pe.Error(), `"`+tt.param+`"`) {
			t.Errorf("Parse(%q): message %q does not name the parameter", tt.query, pe.Error())
		}
		if len(pe.Error()) > 300 {
			t.Errorf("Parse(%q): message is %d bytes long", tt.query, len(pe.Error()))
		}
	}
}

func TestParamNamesAndStrip(t *testing.T) {
	want := []string{"selector", "pageSize", "pageNum", "sortName", "sortOrder", "sortFunc"}
	names := ParamNames()
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("ParamNames() = %v", names)
	}
	names[0] = "changed"
	if ParamNames()[0] != "selector" {
		t.Fatal("ParamNames exposes the package's own slice")
	}
	v := url.Values{"limit": {"500"}, "labelSelector": {"app=web"}}
	for _, n := range want {
		v.Set(n, "x")
	}
	StripParams(v)
	if got := v.Encode(); got != "labelSelector=app%3Dweb&limit=500" {
		t.Errorf("after StripParams: %q", got)
	}
}
