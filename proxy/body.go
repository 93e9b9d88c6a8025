package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// BodyRate is the slowest a request body may arrive. A client that sends a
// byte every few seconds would otherwise hold a connection to the cluster
// (and a server connection) for the whole read timeout; a thousand such
// clients took every connection of a cluster's pool. The rule: from the
// end of the headers, each MinBytes of the body (or all of it, if it is
// smaller) must arrive within Window of the previous ones. A body that
// falls behind is cut and answered 408. The whole body must still arrive
// within the server's read timeout.
type BodyRate struct {
	MinBytes int
	Window   time.Duration
}

// Default body rate: 8 KiB per 10 s, about 800 bytes a second, which any
// working link sends.
const (
	DefaultBodyMinBytes = 8 << 10
	DefaultBodyWindow   = 10 * time.Second
)

func (r BodyRate) withDefaults() BodyRate {
	if r.MinBytes <= 0 {
		r.MinBytes = DefaultBodyMinBytes
	}
	if r.Window <= 0 {
		r.Window = DefaultBodyWindow
	}
	return r
}

// Why reading a client's body failed; the proxy answers each with a 4xx,
// as the client's fault, never as the cluster's.
var (
	// ErrBodyTooSlow: the body fell behind BodyRate. It is a timeout
	// (its Timeout method says true), as net.Error's are.
	ErrBodyTooSlow error = timeoutError("request body arrived too slowly")
	// ErrBodyMalformed: the body's framing (chunked encoding) is broken,
	// or the client closed the connection before the body's end.
	ErrBodyMalformed = errors.New("malformed or incomplete request body")
	// errBodyTooLarge: the body outgrew MaxRequestBodyBytes.
	errBodyTooLarge = errors.New("request body too large")
)

// timeoutError is an error that says it is a timeout.
type timeoutError string

func (e timeoutError) Error() string { return string(e) }

// Timeout reports true: the error is a timeout.
func (e timeoutError) Timeout() bool { return true }

// BodyReader reads a request body from the client connection under
// BodyRate and a size bound, with rolling read deadlines on the
// connection, and remembers why it failed.
type BodyReader struct {
	r    io.Reader
	ctx  *fasthttp.RequestCtx
	rate BodyRate
	// left is how many more bytes may come; negative means no bound.
	left int64
	// end caps every deadline: the server's read timeout.
	end time.Time
	// got counts the bytes of the current window.
	got     int
	started bool
	err     error
}

// NewBodyReader reads ctx's streamed request body under rate, allowing at
// most max bytes (no bound if max <= 0) and ending by end (none if zero).
func NewBodyReader(ctx *fasthttp.RequestCtx, rate BodyRate, max int64, end time.Time) *BodyReader {
	left := int64(-1)
	if max > 0 {
		left = max
	}
	return &BodyReader{r: ctx.RequestBodyStream(), ctx: ctx, rate: rate.withDefaults(), left: left, end: end}
}

// Err is why the body could not be read whole: ErrBodyTooSlow,
// ErrBodyMalformed, errBodyTooLarge, or nil.
func (b *BodyReader) Err() error { return b.err }

func (b *BodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if !b.started {
		b.started = true
		b.newWindow()
	}
	if b.left >= 0 && int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if b.left >= 0 {
		if b.left -= int64(n); b.left < 0 {
			b.err = errBodyTooLarge
			return 0, b.err
		}
	}
	if b.got += n; b.got >= b.rate.MinBytes {
		b.newWindow()
	}
	if err != nil && err != io.EOF {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			b.err = ErrBodyTooSlow
		} else {
			b.err = ErrBodyMalformed
		}
		return n, b.err
	}
	return n, err
}

// newWindow starts a window: the next MinBytes must come within Window.
func (b *BodyReader) newWindow() {
	b.got = 0
	d := time.Now().Add(b.rate.Window)
	if !b.end.IsZero() && b.end.Before(d) {
		d = b.end
	}
	_ = b.ctx.SetReadDeadline(d)
}

// ReadTimeoutForBody is what the server's HeaderReceived hook should give
// as the read timeout of a request that has a body: the body's first
// bytes (the server reads up to 8 KiB itself before any handler runs) must
// come within one window too. Zero, the server's own timeout, for a
// request without a body.
func ReadTimeoutForBody(h *fasthttp.RequestHeader, rate BodyRate) time.Duration {
	if h.ContentLength() == 0 || h.ContentLength() == -2 {
		return 0
	}
	return rate.withDefaults().Window
}

// prefetchBody reads the first MinBytes of body (all of it, if smaller)
// before the cluster is contacted, and sets req's body to what was read
// plus the rest: a client whose body never gets going is cut without ever
// holding a connection to the cluster. A body that fit is sent whole, with
// its length. It returns body's error if the body failed.
func prefetchBody(req *fasthttp.Request, body *BodyReader) error {
	if body == nil {
		return nil
	}
	head := make([]byte, body.rate.MinBytes)
	n, err := io.ReadFull(body, head)
	switch {
	case body.Err() != nil:
		return body.Err()
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		req.SetBodyRaw(head[:n])
	case err != nil:
		return err
	default:
		req.SetBodyStream(io.MultiReader(bytes.NewReader(head), body), req.Header.ContentLength())
	}
	return nil
}
