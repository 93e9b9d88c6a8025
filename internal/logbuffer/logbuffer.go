// Package logbuffer batches log lines on their way to a slow destination —
// a pipe to journald or a container runtime, a terminal, a file — so that
// a busy gateway makes one write system call per batch instead of one per
// request. Lines reach the destination within the flush interval, at once
// for warnings and errors (see Urgent), and on Close.
package logbuffer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Writer is an io.Writer that keeps what is written in memory and passes
// it on when the buffer fills, on every tick of the flush interval, on
// Flush and on Close. It is safe for concurrent use; each Write is passed
// on whole, never split across batches, so log lines stay intact.
type Writer struct {
	mu   sync.Mutex
	dst  io.Writer
	buf  []byte
	size int

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a Writer that batches up to size bytes for dst and flushes
// every interval.
func New(dst io.Writer, size int, interval time.Duration) *Writer {
	w := &Writer{dst: dst, size: size, buf: make([]byte, 0, size),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(interval)
	return w
}

func (w *Writer) loop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = w.Flush()
		case <-w.stop:
			return
		}
	}
}

// Write adds p to the batch. When the batch would outgrow the buffer it is
// passed on first; a p larger than the buffer is passed on directly.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf)+len(p) > w.size {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > w.size {
			return w.dst.Write(p)
		}
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Flush passes the batch on now.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.dst.Write(w.buf)
	// A failed batch is dropped: keeping it would grow without bound
	// while the destination is broken, and retrying could duplicate lines.
	w.buf = w.buf[:0]
	return err
}

// Close stops the flush loop and passes the last batch on. Writes after
// Close still work; they go out on the next Flush or when the buffer fills.
func (w *Writer) Close() error {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
	})
	return w.Flush()
}

// DefaultSize is the batch size a gateway logger uses: large enough for
// hundreds of access-log lines per write.
const DefaultSize = 64 << 10

// NewHandler returns the handler newHandler makes for dst, with its lines
// batched through a Writer of DefaultSize that flushes every interval and
// at once for warnings and errors (see Urgent), and the function that
// writes out the last batch and stops the flushing; call it before exit.
// An interval of 0 leaves dst unbatched.
func NewHandler(dst io.Writer, interval time.Duration, newHandler func(io.Writer) slog.Handler) (slog.Handler, func()) {
	if interval <= 0 {
		return newHandler(dst), func() {}
	}
	w := New(dst, DefaultSize, interval)
	return Urgent(newHandler(w), w), func() { _ = w.Close() }
}

// Urgent wraps h, which writes to w, so that records at level warn and
// above are flushed at once: an operator watching the log sees a problem
// without waiting for the next tick, and the last words before a crash are
// not left in memory.
func Urgent(h slog.Handler, w *Writer) slog.Handler {
	return &urgent{Handler: h, w: w}
}

type urgent struct {
	slog.Handler
	w *Writer
}

func (u *urgent) Handle(ctx context.Context, r slog.Record) error {
	err := u.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := u.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (u *urgent) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &urgent{Handler: u.Handler.WithAttrs(attrs), w: u.w}
}

func (u *urgent) WithGroup(name string) slog.Handler {
	return &urgent{Handler: u.Handler.WithGroup(name), w: u.w}
}
