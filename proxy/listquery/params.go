package listquery

import (
	"fmt"
	"net/url"
	"strconv"
)

// The query parameters that switch list post-processing on. The proxy
// removes them (StripParams) before forwarding, because the apiserver
// does not know them.
const (
	ParamSelector  = "selector"
	ParamPageSize  = "pageSize"
	ParamPageNum   = "pageNum"
	ParamSortName  = "sortName"
	ParamSortOrder = "sortOrder"
	ParamSortFunc  = "sortFunc"
)

var paramNames = [...]string{ParamSelector, ParamPageSize, ParamPageNum, ParamSortName, ParamSortOrder, ParamSortFunc}

// ParamNames returns the names of the parameters this package handles. It
// returns a fresh slice so callers cannot change the package's list.
func ParamNames() []string {
	out := make([]string, len(paramNames))
	copy(out, paramNames[:])
	return out
}

// StripParams deletes this package's parameters from v, leaving the rest of
// the query for the apiserver.
func StripParams(v url.Values) {
	for _, p := range paramNames {
		v.Del(p)
	}
}

// Defaults, as in KubeCube.
const (
	DefaultPageSize = 10
	DefaultPageNum  = 1
	// DefaultMaxPageSize caps pageSize when ParseOptions.MaxPageSize is
	// zero: a page is held and written out in one piece.
	DefaultMaxPageSize = 1000
	// DefaultSortName is the field sorted on when sortName is absent, so
	// pages are deterministic even without a sort request.
	DefaultSortName = "metadata.name"
)

// maxNumberDigits bounds pageSize and pageNum so they fit any int (and
// their product an int64) without overflow checks; a billionth page is
// already far past the end of any list.
const maxNumberDigits = 9

// SortOrder is the sortOrder parameter.
type SortOrder string

// Sort orders.
const (
	Asc  SortOrder = "asc"
	Desc SortOrder = "desc"
)

// SortFunc is the sortFunc parameter: how sort keys are compared.
type SortFunc string

// Sort functions.
const (
	// SortString compares the JSON text of the field byte-wise.
	SortString SortFunc = "string"
	// SortNumber compares JSON numbers, or strings holding a number, by
	// value (integers exactly, anything else as float64).
	SortNumber SortFunc = "number"
	// SortTime compares RFC 3339 timestamps (fractions and offsets
	// allowed) by instant.
	SortTime SortFunc = "time"
)

// ParamError reports an invalid list query parameter, naming it so the
// proxy can answer 400 with a message the user can act on.
type ParamError struct {
	Param  string // the parameter's name, e.g. "pageSize"
	Reason string // what is wrong with its value
}

// Error names the parameter and the reason.
func (e *ParamError) Error() string {
	return fmt.Sprintf("invalid query parameter %q: %s", e.Param, e.Reason)
}

func paramErr(param, format string, args ...any) *ParamError {
	return &ParamError{Param: param, Reason: fmt.Sprintf(format, args...)}
}

// quote quotes user input for an error message, shortening it so a long
// parameter cannot make a huge response.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// Query is a parsed list query. Build it with Parse: the sort path is
// compiled there (a hand-made Query still works, compiled by NewCollector).
type Query struct {
	// Selector filters items; the zero Selector keeps them all.
	Selector Selector
	// PageSize is the number of items per page, at least 1.
	PageSize int
	// PageNum is the 1-based page number.
	PageNum int
	// SortName is the dotted JSON path sorted on.
	SortName string
	// SortOrder is Asc or Desc.
	SortOrder SortOrder
	// SortFunc is how sort keys compare.
	SortFunc SortFunc

	sortPath *fieldPath // compiled SortName, set by Parse
}

// ParseOptions are the caller's limits for Parse.
type ParseOptions struct {
	// MaxPageSize is the largest pageSize accepted; larger values are a
	// 400, not silently clamped, so clients learn the limit. Zero means
	// DefaultMaxPageSize.
	MaxPageSize int
}

// Parse parses the list query parameters with default options. See
// ParseOptions.Parse.
func Parse(v url.Values) (*Query, error) {
	return ParseOptions{}.Parse(v)
}

// Parse returns (nil, nil) when v holds none of the six parameters — the
// request must then be forwarded untouched, never cut to a default page.
// Otherwise it returns the query with defaults filled in, or a *ParamError
// for the first bad parameter. A parameter given more than once is an
// error rather than a guess about which one the client meant.
func (o ParseOptions) Parse(v url.Values) (*Query, error) {
	present := false
	for _, p := range paramNames {
		if vs, ok := v[p]; ok {
			present = true
			if len(vs) > 1 {
				return nil, paramErr(p, "given %d times; give it once", len(vs))
			}
		}
	}
	if !present {
		return nil, nil
	}
	maxSize := o.MaxPageSize
	if maxSize <= 0 {
		maxSize = DefaultMaxPageSize
	}
	q := &Query{PageSize: DefaultPageSize, PageNum: DefaultPageNum, SortName: DefaultSortName, SortOrder: Asc, SortFunc: SortString}
	var err error
	if s, ok := single(v, ParamSelector); ok {
		if q.Selector, err = ParseSelector(s); err != nil {
			return nil, err
		}
	}
	if s, ok := single(v, ParamPageSize); ok {
		if q.PageSize, err = positive(ParamPageSize, s); err != nil {
			return nil, err
		}
		if q.PageSize > maxSize {
			return nil, paramErr(ParamPageSize, "%d is larger than the maximum page size %d", q.PageSize, maxSize)
		}
	}
	if s, ok := single(v, ParamPageNum); ok {
		if q.PageNum, err = positive(ParamPageNum, s); err != nil {
			return nil, err
		}
	}
	if s, ok := single(v, ParamSortName); ok {
		q.SortName = s
	}
	fp, perr := compilePath(q.SortName)
	if perr != nil {
		return nil, paramErr(ParamSortName, "%v", perr)
	}
	q.sortPath = &fp
	if s, ok := single(v, ParamSortOrder); ok {
		switch SortOrder(s) {
		case Asc, Desc:
			q.SortOrder = SortOrder(s)
		default:
			return nil, paramErr(ParamSortOrder, "%s is not asc or desc", quote(s))
		}
	}
	if s, ok := single(v, ParamSortFunc); ok {
		switch SortFunc(s) {
		case SortString, SortNumber, SortTime:
			q.SortFunc = SortFunc(s)
		default:
			return nil, paramErr(ParamSortFunc, "%s is not string, number or time", quote(s))
		}
	}
	return q, nil
}

func single(v url.Values, p string) (string, bool) {
	vs, ok := v[p]
	if !ok {
		return "", false
	}
	if len(vs) == 0 {
		// Present as a key with no value: treat like an empty value, which
		// every parameter rejects.
		return "", true
	}
	return vs[0], true
}

// positive parses a decimal integer >= 1 written with digits only (no sign,
// no spaces), so "+5", " 5" and "5.0" are rejected rather than guessed at.
func positive(param, s string) (int, error) {
	if s == "" {
		return 0, paramErr(param, "empty; want a positive integer")
	}
	if len(s) > maxNumberDigits {
		return 0, paramErr(param, "%s is too large", quote(s))
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, paramErr(param, "%s is not a positive integer", quote(s))
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < 1 {
		if param == ParamPageNum {
			return 0, paramErr(param, "%s is not a positive integer (the first page is 1)", quote(s))
		}
		return 0, paramErr(param, "%s is not a positive integer", quote(s))
	}
	return n, nil
}
