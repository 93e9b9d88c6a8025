package listquery

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkHostileList is issue 15.3's attack on a whole list: 600
// ConfigMaps whose data is 100 KB of "a", in chunks of 500, searched with
// a ~ value of 255 bytes (the longest the bounds allow) that almost
// matches at every offset and never matches. One op is one list call.
//
//	go test -run '^$' -bench HostileList -benchtime 3x ./proxy/listquery/
func BenchmarkHostileList(b *testing.B) {
	const items, per = 600, 500
	blob := strings.Repeat("a", 100<<10)
	var chunks [][]byte
	var total int64
	for from := 0; from < items; from += per {
		var its []string
		for i := from; i < min(from+per, items); i++ {
			its = append(its, fmt.Sprintf(`{"metadata":{"name":"big-%03d","namespace":"costly"},"data":{"blob":%q}}`, i, blob))
		}
		next := ""
		if from+per < items {
			next = fmt.Sprint(from + per)
		}
		c := []byte(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"continue":"` + next + `"},"items":[` + strings.Join(its, ",") + `]}`)
		total += int64(len(c))
		chunks = append(chunks, c)
	}
	for _, n := range []int{1, 15} {
		var vals []string
		for i := range n {
			vals = append(vals, strings.Repeat("a", 254)+string(rune('b'+i)))
		}
		v := url.Values{"selector": {"data.blob~" + strings.Join(vals, "|")}, "pageSize": {"10"}}
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			q, err := Parse(v)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(total)
			for b.Loop() {
				c := NewCollector(q, Limits{})
				for _, ch := range chunks {
					if _, err := c.Add(ch); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := c.Result(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
