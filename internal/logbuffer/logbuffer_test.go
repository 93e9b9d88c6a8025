package logbuffer

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is the destination: it keeps every Write call separately.
type recorder struct {
	mu     sync.Mutex
	writes []string
	wrote  chan struct{}
}

func newRecorder() *recorder { return &recorder{wrote: make(chan struct{}, 1000)} }

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, string(p))
	r.mu.Unlock()
	r.wrote <- struct{}{}
	return len(p), nil
}

func (r *recorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes...)
}

const never = time.Hour

func TestWriterBatches(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		writes []string
		flush  bool
		want   []string // the destination's Write calls
	}{
		{"held until flushed", 64, []string{"a\n", "b\n"}, false, nil},
		{"one write per batch", 64, []string{"a\n", "b\n"}, true, []string{"a\nb\n"}},
		{"a full buffer goes out first", 4, []string{"aa\n", "bb\n"}, false, []string{"aa\n"}},
		{"exactly full stays", 6, []string{"aa\n", "bb\n"}, false, nil},
		{"an oversize line goes straight out", 4, []string{"a\n", "long line\n"}, true, []string{"a\n", "long line\n"}},
		{"nothing to flush writes nothing", 8, nil, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := newRecorder()
			w := New(dst, tt.size, never)
			defer w.Close()
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if tt.flush {
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if got := dst.calls(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("destination got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriterFlushesOnTickAndClose(t *testing.T) {
	dst := newRecorder()
	w := New(dst, 1<<10, 10*time.Millisecond)
	w.Write([]byte("tick\n"))
	select {
	case <-dst.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the flush loop never passed the line on")
	}
	w.Write([]byte("last\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dst.calls(), ""); got != "tick\nlast\n" {
		t.Errorf("destination got %q", got)
	}
}

// Lines written from many goroutines arrive whole and all of them.
func TestWriterKeepsLinesWhole(t *testing.T) {
	var dst bytes.Buffer
	var mu sync.Mutex
	w := New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return dst.Write(p)
	}), 100, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				fmt.Fprintf(w, "goroutine %d line %03d\n", g, i)
			}
		}()
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(dst.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		var g, i int
		if n, err := fmt.Sscanf(l, "goroutine %d line %d", &g, &i); n != 2 || err != nil {
			t.Fatalf("torn line %q", l)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestUrgentFlushesWarnings(t *testing.T) {
	dst := newRecorder()
	w := New(dst, 1<<10, never)
	defer w.Close()
	log := slog.New(Urgent(slog.NewJSONHandler(w, nil), w)).With("component", "test")
	log.Info("routine")
	if got := dst.calls(); len(got) != 0 {
		t.Fatalf("info passed on at once: %q", got)
	}
	log.WithGroup("g").Warn("trouble")
	got := dst.calls()
	if len(got) != 1 || !strings.Contains(got[0], `"msg":"routine"`) || !strings.Contains(got[0], `"msg":"trouble"`) ||
		!strings.Contains(got[0], `"component":"test"`) {
		t.Fatalf("after a warning the destination got %q, want both lines in one write", got)
	}
	log.Error("worse")
	if got := dst.calls(); len(got) != 2 {
		t.Fatalf("error not flushed: %q", got)
	}
}

func TestNewHandler(t *testing.T) {
	for _, tt := range []struct {
		interval time.Duration
		batched  bool
	}{{0, false}, {never, true}} {
		dst := newRecorder()
		h, flush := NewHandler(dst, tt.interval, func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) })
		log := slog.New(h)
		log.Info("routine")
		if got := len(dst.calls()) == 0; got != tt.batched {
			t.Errorf("interval %s: info line held back = %v, want %v", tt.interval, got, tt.batched)
		}
		log.Warn("trouble")
		flush()
		if got := strings.Join(dst.calls(), ""); !strings.Contains(got, "routine") || !strings.Contains(got, "trouble") {
			t.Errorf("interval %s: destination got %q", tt.interval, got)
		}
	}
}
