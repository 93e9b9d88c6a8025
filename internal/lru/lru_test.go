package lru

import (
	"runtime"
	"strconv"
	"testing"
)

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	l := New[int](3)
	l.Put("a", 1)
	l.Put("b", 2)
	l.Put("c", 3)
	l.Get("a") // a is now most recent; b is least
	l.Put("d", 4)
	if _, ok := l.Get("b"); ok {
		t.Error("b should have been evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := l.Get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	l.Remove("c")
	l.Put("e", 5)
	l.Put("f", 6)
	if l.Len() != 3 {
		t.Errorf("len = %d", l.Len())
	}
	if v, _ := l.Get("f"); v != 6 {
		t.Errorf("f = %d", v)
	}
}

func TestLRURemoveIfAndClear(t *testing.T) {
	l := New[int](10)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		l.Put(k, i)
	}
	l.RemoveIf(func(_ string, v int) bool { return v%2 == 0 }) // a, c, e
	for k, want := range map[string]bool{"a": false, "b": true, "c": false, "d": true, "e": false} {
		if _, ok := l.Get(k); ok != want {
			t.Errorf("%s present = %v, want %v", k, ok, want)
		}
	}
	if l.Len() != 2 {
		t.Errorf("len = %d, want 2", l.Len())
	}
	// The list must still be intact: fill past capacity and evict in order.
	for i := range 12 {
		l.Put(string(rune('m'+i)), i)
	}
	if l.Len() != 10 {
		t.Errorf("len after refill = %d, want 10", l.Len())
	}
	l.Clear()
	if _, ok := l.Get("x"); ok || l.Len() != 0 {
		t.Errorf("after Clear: len %d", l.Len())
	}
	l.Put("z", 1)
	if v, ok := l.Get("z"); !ok || v != 1 {
		t.Error("map unusable after Clear")
	}
}

// A Map's memory follows its entries, not its bound: a large bound
// allocates no more than a small one until entries are put.
func TestLRUDoesNotPreallocate(t *testing.T) {
	allocated := func(max int) uint64 {
		var before, after runtime.MemStats
		maps := make([]*Map[int], 100)
		runtime.ReadMemStats(&before)
		for i := range maps {
			maps[i] = New[int](max)
		}
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(maps)
		return (after.TotalAlloc - before.TotalAlloc) / uint64(len(maps))
	}
	small, large := allocated(1), allocated(1<<20)
	// The struct and an empty map header: well under a kilobyte, however
	// large the bound. Sized for the bound, one map would take megabytes.
	if large > 1024 || large > small+64 {
		t.Errorf("New(1<<20) allocates %d bytes, New(1) %d: the map is sized for its bound", large, small)
	}
	m := New[int](1 << 20)
	for i := range 3000 {
		m.Put(strconv.Itoa(i), i)
	}
	if m.Len() != 3000 {
		t.Errorf("after 3000 puts under a bound of 1<<20: %d entries", m.Len())
	}
}
