package frontend

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"outrigger/internal/balancer"
	"outrigger/internal/clientip"
	"outrigger/internal/h1"
)

// proxyHandler is the net/http side of a proxy listener: it takes HTTP/2 requests (and with
// NetHTTPOnly the HTTP/1 ones, which reach it through the gate) and forwards them through
// the same forwarding loop, backend client and table as lb's own loop. It is a thin adapter:
// the request's head becomes an Outgoing, its body a BodySource, and the ResponseWriter a
// balancer.Client.
type proxyHandler struct {
	l      *Listener
	proxy  *balancer.Proxy
	dates  h1.DateCache
	states sync.Pool // *streamState
}

// streamState is what one request on net/http reuses.
type streamState struct {
	outgoing balancer.Outgoing
	fw       balancer.Forwarding
	req      balancer.Request
	body     netHTTPBody
	client   netHTTPClient
}

func (h *proxyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, _ := h.states.Get().(*streamState)
	if st == nil {
		st = &streamState{}
	}
	defer h.states.Put(st)
	set := h.l.settings()
	hsts := ""
	if r.TLS != nil {
		hsts = set.HSTS
	}
	rc := http.NewResponseController(w)
	st.client = netHTTPClient{h: h, w: w, rc: rc, r: r, writeTimeout: set.WriteTimeout}
	target, ok := originTarget(r)
	if !ok || r.Method == http.MethodConnect || !h1.ValidFieldName(r.Method) || r.Host != "" && !h1.ValidHost(r.Host) ||
		r.Host == "" && r.ProtoMajor > 1 || r.ProtoMajor > 1 && !validContentLength(r.Header["Content-Length"]) {
		h.l.opts.Logger.Info("request refused", "listener", h.l.opts.Name, "remote", r.RemoteAddr, "reason", "bad request", "status", 400)
		balancer.WriteError(&st.client, 400, balancer.ErrorMessage(400), "", hsts, r.Method == http.MethodHead)
		return
	}
	upgrade := ""
	if r.ProtoMajor == 1 && r.ProtoMinor == 1 && headerHasToken(r.Header["Connection"], "upgrade") {
		upgrade = r.Header.Get("Upgrade")
	}
	var connVals []byte
	if c := r.Header["Connection"]; len(c) > 0 {
		connVals = []byte(strings.Join(c, ","))
	}
	p := h.proxy
	st.outgoing.Begin(p, clientip.AddrFromRemote(r.RemoteAddr), []byte(r.Method), []byte(target), []byte(r.Host), upgrade != "", connVals)
	for name, values := range r.Header {
		for _, v := range values {
			st.outgoing.Header(name, v)
		}
	}
	if st.outgoing.Invalid() {
		balancer.WriteError(&st.client, 400, balancer.ErrorMessage(400), "", hsts, r.Method == http.MethodHead)
		return
	}
	st.req = balancer.Request{Method: r.Method, Path: r.URL.Path, Upgrade: upgrade, HSTS: hsts, Begin: time.Now()}
	st.outgoing.Finish(p, &st.req, r.TLS != nil)
	st.body = netHTTPBody{r: r, rc: rc, timeout: set.BodyReadTimeout, gate: gateOf(r)}
	st.req.BodySrc = &st.body
	st.req.BodyLength = r.ContentLength
	if r.Body == nil || r.Body == http.NoBody {
		st.req.BodyLength = 0
	}
	st.req.Framed = r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.Header["Content-Length"] != nil
	out := p.Forward(&st.fw, &st.req, &st.client)
	h.l.served.Add(1)
	if st.client.aborted || out.Gone && st.client.conn == nil {
		// net/http cuts the answer (a reset stream, a closed connection) rather than end it,
		// or answer 200 for a handler that wrote nothing.
		panic(http.ErrAbortHandler)
	}
}

// validContentLength reports whether an HTTP/2 request's content-length fields are digits,
// all of one value, or none, as lb's own HTTP/2 server wants them: net/http's takes the first
// of several and reads a bad one as 0, which would send the backend a request without the
// body the client framed.
func validContentLength(values []string) bool {
	first := int64(-1)
	for _, v := range values {
		n, ok := parseContentLength(v)
		if !ok || first >= 0 && n != first {
			return false
		}
		first = n
	}
	return true
}

// originTarget returns the target a backend gets: the request-target as the client sent it
// (net/http keeps it in RequestURI; for HTTP/2 it is :path), with an absolute-form one cut
// to its path and query. false for a target h1 would not take.
func originTarget(r *http.Request) (string, bool) {
	t := r.RequestURI
	if i := strings.Index(t, "://"); i > 0 && !strings.HasPrefix(t, "/") {
		rest := t[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			return "/", true
		}
		t = rest[j:]
		if t[0] == '?' {
			t = "/" + t
		}
	}
	if t == "*" && r.Method != http.MethodOptions {
		return "", false
	}
	return t, h1.ValidOrigin(t)
}

// headerHasToken reports whether one of the comma-separated values lists token.
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		if h1.HasToken([]byte(v), token) {
			return true
		}
	}
	return false
}

// netHTTPBody is a request body read through net/http, each read within body_read_timeout.
type netHTTPBody struct {
	r           *http.Request
	rc          *http.ResponseController
	timeout     time.Duration
	gate        *gate // the HTTP/1 connection's gate, nil for HTTP/2
	interrupted atomic.Bool
}

// Read reads body bytes.
func (b *netHTTPBody) Read(p []byte) (int, error) {
	if b.interrupted.Load() {
		return 0, errInterrupted
	}
	if b.timeout > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.r.Body.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case b.interrupted.Load():
		err = errInterrupted
	case b.gate != nil && b.gate.bodyRefusal.Load() != nil:
		err = b.gate.bodyRefusal.Load() // the gate cut a body h1 refused: answer as lb's loop does
	}
	return n, err
}

// Interrupt unblocks a read in progress for good.
func (b *netHTTPBody) Interrupt() {
	b.interrupted.Store(true)
	_ = b.rc.SetReadDeadline(aLongTimeAgo)
}
