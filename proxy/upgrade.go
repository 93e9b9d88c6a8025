package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// maxUpgradeErrorBody bounds the body of a refused upgrade we relay.
const maxUpgradeErrorBody = 1 << 20

// serveUpgrade handles exec, attach and port-forward (WebSocket or
// SPDY/3.1): it opens a dedicated connection to the cluster, sends the
// upgrade request, and only if the cluster answers 101 hijacks the client
// connection and copies bytes both ways. Any other answer goes back as an
// ordinary response and both connections are closed, never reused: a
// half-upgraded connection left open is CVE-2018-1002105. Redirects are
// relayed, never followed. release, which frees the stream's place in the
// stream limits, runs when the upgrade ends or fails.
func (p *Proxy) serveUpgrade(ctx *fasthttp.RequestCtx, u *upstream, t Target, id Identity, release func()) {
	hijacked := false
	defer func() {
		if !hijacked {
			release()
		}
	}()
	req := p.newRequest(ctx, u, t, id, true)
	defer fasthttp.ReleaseRequest(req)

	up, err := u.dial(p.opts.Pool.opts.DialTimeout)
	if err != nil {
		p.upstreamError(ctx, u, err)
		return
	}
	// The handshake must finish in RequestTimeout; the spliced stream then
	// lives as long as both peers keep it.
	_ = up.SetDeadline(time.Now().Add(p.opts.RequestTimeout))
	bw := bufio.NewWriter(up)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		up.Close()
		p.upstreamError(ctx, u, err)
		return
	}
	br := bufio.NewReader(up)
	var rh fasthttp.ResponseHeader
	rh.DisableNormalizing()
	if err := rh.Read(br); err != nil {
		up.Close()
		p.upstreamError(ctx, u, err)
		return
	}
	p.opts.Observer.Request(u.name, string(ctx.Method()), rh.StatusCode(), 0)

	if foreignRedirect(ctx, &rh) {
		up.Close()
		p.refuseRedirect(ctx, u, rh.StatusCode())
		ctx.SetConnectionClose()
		return
	}
	if rh.StatusCode() != fasthttp.StatusSwitchingProtocols {
		p.relayRefusedUpgrade(ctx, &rh, br)
		up.Close()
		return
	}
	_ = up.SetDeadline(time.Time{})
	if !stillAllowed(id) {
		up.Close()
		p.accessWithdrawn(ctx, u, id)
		return
	}

	head := append([]byte(nil), rh.Header()...)
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	hijacked = true
	ctx.Hijack(func(client net.Conn) {
		defer release()
		p.opts.Observer.StreamOpened(u.name, "upgrade")
		defer p.opts.Observer.StreamClosed(u.name, "upgrade")
		defer up.Close()
		defer u.track(func() {
			up.Close()
			client.Close()
		}, id.StillAllowed)()
		if !stillAllowed(id) {
			// Withdrawn since the check before the hijack.
			return
		}
		if _, err := client.Write(head); err != nil {
			return
		}
		splice(client, raw, up, br)
	})
}

// relayRefusedUpgrade passes the cluster's non-101 answer to the client
// and marks the client connection to close after it.
func (p *Proxy) relayRefusedUpgrade(ctx *fasthttp.RequestCtx, rh *fasthttp.ResponseHeader, br *bufio.Reader) {
	var body []byte
	if n := rh.ContentLength(); n > 0 && n <= maxUpgradeErrorBody {
		body = make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			body = nil
		}
	} else if n < 0 {
		var resp fasthttp.Response
		resp.Header.DisableNormalizing()
		rh.CopyTo(&resp.Header)
		if err := resp.ReadBody(br, maxUpgradeErrorBody); err == nil {
			body = append(body, resp.Body()...)
		}
	}
	ctx.SetStatusCode(rh.StatusCode())
	copyResponseHeaders(&ctx.Response.Header, rh)
	ctx.SetBody(body)
	ctx.SetConnectionClose()
}

// splice copies client→upstream and upstream→client until both directions
// end. When the client finishes sending, the upstream gets a half-close
// (its output may still be flowing: `kubectl exec -i … < file`); when the
// upstream is done, the client gets a half-close and the splice ends once
// the client stops too (or after a short grace period).
func splice(client net.Conn, rawClient net.Conn, up net.Conn, upReader *bufio.Reader) {
	var wg sync.WaitGroup
	wg.Add(1)
	toClientDone := make(chan struct{})
	go func() {
		defer wg.Done()
		_, _ = io.Copy(up, client)
		closeWrite(up)
	}()
	go func() {
		defer close(toClientDone)
		_, _ = io.Copy(rawClient, upReader)
		closeWrite(rawClient)
	}()
	<-toClientDone
	// The cluster side is finished; give the client a moment to close
	// cleanly, then end its read so the goroutine above returns.
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	wg.Wait()
}

// closeWrite half-closes a connection when its type allows it.
func closeWrite(c net.Conn) {
	switch c := c.(type) {
	case *tls.Conn:
		_ = c.CloseWrite()
	case *net.TCPConn:
		_ = c.CloseWrite()
	}
}

// dial opens a dedicated connection to the cluster for an upgrade; pooled
// connections are never used for one.
func (u *upstream) dial(timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if u.scheme != "https" {
		return d.Dial("tcp", u.host)
	}
	return tls.DialWithDialer(d, "tcp", u.host, u.tls.Clone())
}
