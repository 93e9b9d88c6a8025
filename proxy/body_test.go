package proxy

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestReadTimeoutForBody(t *testing.T) {
	rate := BodyRate{MinBytes: 10, Window: 3 * time.Second}
	tests := []struct {
		name string
		head string
		want time.Duration
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0},
		{"empty body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 0},
		{"declared body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 3 * time.Second},
		{"chunked body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 3 * time.Second},
	}
	for _, tt := range tests {
		var h fasthttp.RequestHeader
		if err := h.Read(bufioReader(tt.head)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := ReadTimeoutForBody(&h, rate); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRetryOnFreshConn(t *testing.T) {
	reset := &wrappedErr{syscall.ECONNRESET}
	tests := []struct {
		method   string
		stream   bool
		attempts int
		err      error
		want     bool
	}{
		{"GET", false, 1, io.EOF, true},
		{"HEAD", false, 1, reset, true},
		{"OPTIONS", false, 1, syscall.EPIPE, true},
		{"GET", false, 2, io.EOF, false},              // once only
		{"GET", false, 1, fasthttp.ErrTimeout, false}, // the cluster may be slow, not gone
		{"GET", false, 1, errors.New("error when reading response headers"), false},
		{"GET", true, 1, io.EOF, false}, // a streamed body cannot be sent again
		{"POST", false, 1, io.EOF, false},
		{"PUT", false, 1, io.EOF, false},
		{"PATCH", false, 1, io.EOF, false},
		{"DELETE", false, 1, io.EOF, false},
	}
	for _, tt := range tests {
		req := fasthttp.AcquireRequest()
		req.Header.SetMethod(tt.method)
		if tt.stream {
			req.SetBodyStream(io.LimitReader(nil, 0), -1)
		}
		if got := retryOnFreshConn(req, tt.attempts, tt.err); got != tt.want {
			t.Errorf("%s stream=%v attempt %d %v: %v, want %v", tt.method, tt.stream, tt.attempts, tt.err, got, tt.want)
		}
		fasthttp.ReleaseRequest(req)
	}
}

// wrappedErr wraps an errno as the net package does.
type wrappedErr struct{ err error }

func (e *wrappedErr) Error() string { return "write: " + e.err.Error() }
func (e *wrappedErr) Unwrap() error { return e.err }

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
