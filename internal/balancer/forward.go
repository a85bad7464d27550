package balancer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"outrigger/internal/h1"
	"outrigger/internal/logging"
)

// Forwarding is the forwarding loop's working memory for one request at a time. A front end
// keeps one per connection (or per HTTP/2 stream) and reuses it, so that forwarding a
// request allocates nothing.
type Forwarding struct {
	p *Proxy
	tries
	resp     h1.Response
	head     ResponseHead
	kept     []h1.Field
	trailer  []byte
	trailers []h1.Field
	bytes    int64 // body bytes sent to the client
	early    bool  // the backend answered before the streamed body was all sent
	body     []byte
	framing  []byte
	rec      logging.RequestRecord
}

// Outcome is what became of a forwarded request, for the front end to decide what to do
// with the client connection.
type Outcome struct {
	Code     int  // the status logged (499 for a client that went away)
	Gone     bool // the client went away
	Broken   bool // the backend broke the body off; the client saw it cut
	Upgraded bool // the connection became a tunnel, which is over
	// Unread is set when the request body was not read to its end (the backend answered
	// before it was all sent, or reading it failed): the connection cannot carry another.
	Unread bool
}

// attemptResult is the outcome of one attempt.
type attemptResult struct {
	started    bool             // the answer's head went to the client: no retry from here
	broken     bool             // the backend broke the body off after it started
	gone       bool             // the client went away
	upgraded   bool             // the answer was a 101 and the tunnel is over
	code       int              // the status of a started answer
	err        error            // why the attempt failed before an answer
	clientBody *ClientBodyError // reading the request body from the client failed
}

// Forward is the one forwarding loop every front end calls: it picks a backend by the policy
// (re-checking its state after the pick, so a drain is exact), counts the request in flight
// until its answer's body is copied, sends the request with lb's own HTTP/1.1 client,
// retries a dial error for any method and a reset or per-try timeout for idempotent
// methods, on backends not yet tried, within max_retries and the retry budget, and writes
// the answer (or lb's own 502/503/504) to client. It counts and logs the request before it
// returns; the front end then flushes what client holds.
func (p *Proxy) Forward(st *Forwarding, req *Request, client Client) Outcome {
	st.p = p
	cfg := p.cfg.Load()
	pol := p.policy.Load().Policy
	p.budget.request()
	st.reset()
	st.bytes, st.early = 0, false
	defer p.finish(&st.tries)
	var err error
	if req.Body, err = ReadBody(req.BodySrc, req.BodyLength, cfg.RetryBodyBytes, st.body); err != nil {
		return p.unread(st, req, client, err.(*ClientBodyError))
	}
	if !req.Body.Streamed() {
		st.body = req.Body.Bytes[:0] // kept for the next request
	}

	var (
		last     *Backend
		reason   string
		attempts int
		sawFull  bool
		res      attemptResult
	)
	for attempts < 1+cfg.MaxRetries {
		b, full := p.pick(&st.tries, cfg, pol)
		sawFull = sawFull || full
		if b == nil {
			break
		}
		attempts++
		last = b
		res = st.attempt(b, req, client)
		if res.started || res.gone || res.clientBody != nil {
			break
		}
		var retry bool
		if reason, retry = p.afterFailure(b, res.err, req.Method, req.Body.replayable(), attempts, cfg); !retry {
			break
		}
	}

	out := Outcome{Unread: st.early}
	switch {
	case res.clientBody != nil:
		out = st.bodyFailed(req, client, res.clientBody, res.started)
	case res.gone:
		out.Code, out.Gone = 499, true // the client went away: not the backend's fault
	case res.broken:
		out.Code, out.Broken = res.code, true
		p.countBroken(last)
		client.Abort()
	case res.started:
		out.Code, out.Upgraded = res.code, res.upgraded
	default:
		code, msg := failureStatus(last, sawFull, reason)
		out.Code = code
		st.bytes = WriteError(client, code, msg, req.RequestID, req.HSTS, req.Method == "HEAD")
	}
	p.countRequest(last, out.Code, req.Begin)
	p.logRequest(st, req, last, attempts, out)
	return out
}

// unread ends a request whose body could not be read before any backend was tried: it is
// logged, not counted (no backend saw it).
func (p *Proxy) unread(st *Forwarding, req *Request, client Client, err *ClientBodyError) Outcome {
	out := st.bodyFailed(req, client, err, false)
	p.logRequest(st, req, nil, 0, out)
	return out
}

// bodyFailed is the outcome of a request whose body the client did not send as it should:
// answered 400 when its framing was refused (a bad chunk) and 408 when it was slower than
// body_read_timeout, if nothing was answered yet; else 499 (the client went away, or the
// answer had begun).
func (st *Forwarding) bodyFailed(req *Request, client Client, err *ClientBodyError, started bool) Outcome {
	out := Outcome{Unread: true, Code: 499, Gone: true}
	var refused *h1.Error
	var ne net.Error
	switch {
	case started:
		return out
	case errors.As(err.Err, &refused):
		// A refused framing, or a body slower than body_read_timeout, is answered even
		// when the read error made net/http take the client for gone (it cancels the
		// request's context on any read error): the connection still takes a write.
		out.Code = refused.Status
	case errors.As(err.Err, &ne) && ne.Timeout():
		out.Code = http.StatusRequestTimeout
	default:
		return out
	}
	out.Gone = false
	st.bytes = WriteError(client, out.Code, ErrorMessage(out.Code), req.RequestID, req.HSTS, req.Method == http.MethodHead)
	return out
}

// logRequest writes the request's access line.
func (p *Proxy) logRequest(st *Forwarding, req *Request, last *Backend, attempts int, out Outcome) {
	name := ""
	if last != nil {
		name = last.name
	}
	st.rec = logging.RequestRecord{
		Method:    req.Method,
		Path:      req.Path,
		Status:    out.Code,
		Duration:  time.Since(req.Begin),
		ClientIP:  req.ClientIP,
		RequestID: req.RequestID,
		Bytes:     st.bytes,
		Backend:   name,
		Attempts:  attempts,
		Broken:    out.Broken,
	}
	p.log.Log(&st.rec)
}

// attempt sends the request to b once (and once more on a fresh connection when a reused one
// turns out closed, by net/http's rule) and, if an answer comes back, relays it to the client.
func (st *Forwarding) attempt(b *Backend, req *Request, client Client) (res attemptResult) {
	b.requests.Add(1)
	upgraded := false
	defer func() {
		if !upgraded {
			b.release()
		}
	}()
	start := time.Now()
	perTry := time.Duration(st.p.pool.perTryNS.Load())
	var bc *backendConn
	for try := 0; ; try++ {
		var reused bool
		var err error
		bc, reused, err = b.conns.get(context.Background(), try > 0)
		if err != nil {
			res.gone, res.err = client.Gone(), err
			return res
		}
		if !client.Watch(bc) {
			_ = bc.c.Close()
			res.gone = true
			return res
		}
		written, read := bc.nwrite, bc.nread
		if err = st.exchange(bc, req, client, perTry); err == nil {
			break
		}
		client.Unwatch()
		fe := bc.failure(err, written, read)
		_ = bc.c.Close()
		var cbe *ClientBodyError
		switch {
		case errors.As(err, &cbe):
			res.clientBody = cbe
			return res
		case errors.Is(err, errClientGone) || client.Gone():
			res.gone = true
			return res
		case try == 0 && reused && req.Body.replayable() && fe.retryOnNewConn(replayableMethod(req.Method, req.IdempotencyKey)):
			continue // the backend had closed this idle connection: once more on a new one
		}
		res.err = err
		return res
	}
	if st.resp.Code == http.StatusSwitchingProtocols && !upgradeMatches(req.Upgrade, st.resp.Upgrade) {
		client.Unwatch()
		_ = bc.c.Close()
		res.err = errors.New("backend switched to another protocol than the one asked for")
		return res
	}
	b.observeLatency(time.Since(start))
	if o := st.p.observer; o != nil {
		o.Observe(b.name, false)
	}
	head := req.Method == http.MethodHead
	st.kept = filterResponse(&st.head, st.kept, &st.resp, req, head)
	res.started, res.code = true, st.resp.Code
	if err := client.Start(&st.head); err != nil {
		client.Unwatch()
		_ = bc.c.Close()
		res.gone = true
		return res
	}
	bc.rd.Discard(st.resp.HeadLen)
	if res.code == http.StatusSwitchingProtocols {
		client.Unwatch()
		b.release() // from in flight to upgraded
		upgraded, res.upgraded = true, true
		st.tunnel(b, bc, client)
		return res
	}
	keep, err := st.relay(bc, client, head)
	client.Unwatch()
	switch {
	case err == nil:
	case errors.Is(err, errClientGone) || client.Gone():
		res.gone = true
	default:
		res.broken = true
	}
	bc.release(keep && err == nil)
	return res
}

// replayableMethod is net/http's rule for sending a request again on a fresh connection after
// a reused one broke once something was written: an idempotent method, or an idempotency key.
func replayableMethod(method string, idempotencyKey bool) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return idempotencyKey
}
