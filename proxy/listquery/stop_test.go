package listquery

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// meter is a Budget that counts, refuses past limit (zero: never) and can
// run a hook on every Take.
type meter struct {
	limit, used, peak int64
	takes             int
	onTake            func(n int)
}

var errRefused = errors.New("budget spent")

func (m *meter) Take(n int64) error {
	if m.limit > 0 && m.used+n > m.limit {
		return errRefused
	}
	m.used += n
	m.peak = max(m.peak, m.used)
	m.takes++
	if m.onTake != nil {
		m.onTake(m.takes)
	}
	return nil
}

func (m *meter) Give(n int64) {
	m.used -= n
	if m.used < 0 {
		panic(fmt.Sprintf("gave back more than was taken: %d", m.used))
	}
}

// pods makes n chunks of per items each, with names in reverse order so
// every item is kept and the heap works.
func pods(n, per int) [][]byte {
	var out [][]byte
	for c := range n {
		var items []string
		for i := range per {
			items = append(items, pod("ns", fmt.Sprintf("p-%06d", n*per-(c*per+i)), `"spec":{"nodeName":"node-a"}`))
		}
		next := ""
		if c < n-1 {
			next = fmt.Sprint(c + 1)
		}
		out = append(out, chunk(next, 0, items...))
	}
	return out
}

// The collector accounts what it keeps: the budget never goes negative (a
// panic in Give), while collecting it holds about the kept items, and
// after Result exactly what Held says, which covers the body.
func TestCollectorBudgetAccounting(t *testing.T) {
	for _, q := range []string{"pageSize=5", "pageSize=1000&pageNum=2", "pageSize=7&pageNum=40&sortOrder=desc", "selector=metadata.name~p-0001"} {
		m := &meter{}
		c := NewCollector(mustQuery(t, q), Limits{}).WithBudget(m)
		var listBytes int64
		for _, ch := range pods(6, 500) {
			listBytes += int64(len(ch))
			if _, err := c.Add(ch); err != nil {
				t.Fatal(err)
			}
			if m.used != c.Held() {
				t.Fatalf("%s: budget counts %d, collector says it holds %d", q, m.used, c.Held())
			}
		}
		out, err := c.Result()
		if err != nil {
			t.Fatal(err)
		}
		if m.used != c.Held() || c.Held() < int64(len(out)) || c.Held() > int64(len(out))+64+20 {
			t.Errorf("%s: after Result the budget counts %d, Held %d, body %d", q, m.used, c.Held(), len(out))
		}
		// Even keeping the whole list, the count stays near its size
		// (each kept item once, plus the array of entries).
		if m.peak > 2*listBytes+int64(len(out)) {
			t.Errorf("%s: peak %d for a list of %d bytes", q, m.peak, listBytes)
		}
		if m.takes == 0 {
			t.Errorf("%s: nothing was ever taken", q)
		}
	}
}

// A budget that refuses fails the list with its error, and the collector
// never holds more than the budget allowed.
func TestCollectorBudgetRefuses(t *testing.T) {
	m := &meter{limit: 64 << 10}
	c := NewCollector(mustQuery(t, "pageSize=1000&pageNum=3"), Limits{}).WithBudget(m)
	var err error
	for _, ch := range pods(6, 500) {
		if _, err = c.Add(ch); err != nil {
			break
		}
	}
	if !errors.Is(err, errRefused) {
		t.Fatalf("Add = %v; want the budget's refusal", err)
	}
	if m.peak > m.limit {
		t.Errorf("peak %d over the limit %d", m.peak, m.limit)
	}
	if _, err := c.Result(); !errors.Is(err, errRefused) {
		t.Errorf("Result after a refusal = %v", err)
	}
}

// A context ending stops the work at the next item, not at the end of the
// chunk: the hook cancels after the tenth kept item, and the collector
// must have looked at no more than one item past it.
func TestCollectorStopsWithinAChunk(t *testing.T) {
	cause := errors.New("client went away")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	m := &meter{}
	c := NewCollector(mustQuery(t, "pageSize=1000"), Limits{}).WithContext(ctx).WithBudget(m)
	m.onTake = func(n int) {
		if n == 10 {
			cancel(cause)
		}
	}
	_, err := c.Add(pods(1, 500)[0])
	if !errors.Is(err, cause) {
		t.Fatalf("Add = %v; want the cause", err)
	}
	if c.seen > 12 {
		t.Errorf("went on for %d items after the context ended", c.seen)
	}
}

// The sort stops too: a context that ends before Result makes it fail
// with the cause instead of sorting.
func TestCollectorStopsSorting(t *testing.T) {
	cause := errors.New("time budget spent")
	ctx, cancel := context.WithCancelCause(context.Background())
	c := NewCollector(mustQuery(t, "pageSize=1000&pageNum=2"), Limits{}).WithContext(ctx)
	for _, ch := range pods(3, 1000) {
		if _, err := c.Add(ch); err != nil {
			t.Fatal(err)
		}
	}
	cancel(cause)
	if _, err := c.Result(); !errors.Is(err, cause) {
		t.Fatalf("Result = %v; want the cause", err)
	}
}

// The heapsort orders like the comparison it uses, for sizes around its
// check interval.
func TestSortKept(t *testing.T) {
	for _, n := range []int{0, 1, 2, 1023, 1024, 1025, 3000} {
		c := NewCollector(&Query{PageSize: max(n, 1), PageNum: 1}, Limits{})
		for _, ch := range pods(1, n) {
			if _, err := c.Add(ch); err != nil {
				t.Fatal(err)
			}
		}
		kept := len(c.kept)
		if err := c.sortKept(); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(c.kept); i++ {
			if c.ord.compare(&c.kept[i-1], &c.kept[i]) > 0 {
				t.Fatalf("n=%d: out of order at %d", n, i)
			}
		}
		if len(c.kept) != kept {
			t.Fatalf("n=%d: lost items", n)
		}
	}
}
