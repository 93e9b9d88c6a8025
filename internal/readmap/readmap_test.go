package readmap

import (
	"sync"
	"testing"
)

func TestGetMakesOnceAndKeepsWithinLimit(t *testing.T) {
	m := Map[string, *int]{Limit: 3}
	made := 0
	newInt := func() *int { made++; v := made; return &v }
	a := m.Get("a", newInt)
	if m.Get("a", newInt) != a || made != 1 {
		t.Fatalf("a made %d times", made)
	}
	m.Get("b", newInt)
	m.Get("c", newInt)
	d := m.Get("d", newInt) // past the limit: made, not kept
	if m.Len() != 3 || d == nil || made != 4 {
		t.Fatalf("len %d, made %d", m.Len(), made)
	}
	if m.Get("d", newInt) == d || made != 5 {
		t.Errorf("d kept past the limit (made %d)", made)
	}
	if *m.Get("a", newInt) != 1 {
		t.Errorf("a changed")
	}
}

func TestConcurrentGetsAgree(t *testing.T) {
	var m Map[int, *int]
	var wg sync.WaitGroup
	got := make([][]*int, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 100; k++ {
				got[g] = append(got[g], m.Get(k, func() *int { v := k; return &v }))
			}
		}()
	}
	wg.Wait()
	for g := range got {
		for k, v := range got[g] {
			if v != got[0][k] || *v != k {
				t.Fatalf("goroutine %d key %d got a different value", g, k)
			}
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	type key struct {
		route, method string
		code          int
	}
	var m Map[key, int]
	k := key{"/proxy/clusters/{name}/*", "GET", 200}
	m.Get(k, func() int { return 1 })
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Get(k, func() int { return 1 })
		}
	})
}
