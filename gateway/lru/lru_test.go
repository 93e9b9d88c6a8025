package lru

import "testing"

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
