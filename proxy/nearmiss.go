package proxy

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/berthgw/berth/proxy/listquery"
)

// Near misses of the list query parameters.
//
// The parameters are case-sensitive, as in KubeCube: pageSize works,
// pagesize is passed to the cluster, which ignores it, and the client gets
// the whole list with no sign that anything was amiss. Berth still passes
// such a parameter on unchanged (it may mean something to the cluster),
// but it adds a Kubernetes warning, which kubectl and client-go print:
//
//	Warning: 299 - "unknown query parameter \"pagesize\"; did you mean \"pageSize\"?"

// maxNearMissName bounds the names compared: the parameters are at most 9
// bytes, so a longer name is no near miss, and the comparison stays cheap
// whatever the client sends.
const maxNearMissName = 16

// apiServerParams are the API server's own query parameters, lower-cased:
// never reported, however close they come to a list parameter.
var apiServerParams = map[string]bool{
	"watch": true, "labelselector": true, "fieldselector": true, "limit": true, "continue": true,
	"resourceversion": true, "resourceversionmatch": true, "timeoutseconds": true, "timeout": true,
	"allowwatchbookmarks": true, "sendinitialevents": true, "pretty": true, "dryrun": true,
	"fieldmanager": true, "fieldvalidation": true, "force": true, "graceperiodseconds": true,
	"propagationpolicy": true, "orphandependents": true, "container": true, "follow": true,
	"previous": true, "sinceseconds": true, "sincetime": true, "timestamps": true, "taillines": true,
	"limitbytes": true, "insecureskiptlsverifybackend": true, "stdin": true, "stdout": true,
	"stderr": true, "tty": true, "command": true, "ports": true, "path": true, "includeobject": true,
}

// nearMiss returns the list parameter a query parameter name probably
// meant, or "". A name is a near miss when it is not a list parameter but,
// lower-cased and without '_' and '-', equals one or is one edit away from
// it (two for the longer names): sortname, page_size, pagesiz, selecter.
func nearMiss(name string) string {
	if len(name) > maxNearMissName {
		return ""
	}
	norm := strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(name))
	if norm == "" || apiServerParams[norm] {
		return ""
	}
	best, bestDist := "", 3
	for _, p := range listquery.ParamNames() {
		if name == p {
			return ""
		}
		allowed := 1
		if len(p) >= 8 {
			allowed = 2
		}
		if d := editDistance(norm, strings.ToLower(p)); d <= allowed && d < bestDist {
			best, bestDist = p, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two short strings, in
// bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// addNearMissWarnings adds a Warning header to h for every query parameter
// that is a near miss of a list parameter, once per name. Names that
// cannot be written in a warning (control characters, invalid UTF-8) are
// skipped rather than echoed.
func addNearMissWarnings(h *fasthttp.ResponseHeader, rawQuery string) {
	if rawQuery == "" {
		return
	}
	seen := map[string]bool{}
	for kv := range strings.SplitSeq(rawQuery, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		meant := nearMiss(k)
		if meant == "" {
			continue
		}
		w, err := utilnet.NewWarningHeader(299, "-", fmt.Sprintf("unknown query parameter %q; did you mean %q?", k, meant))
		if err != nil {
			continue
		}
		h.Add("Warning", w)
	}
}
