package balancer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"outrigger/internal/h1"
)

// respHead is what the fast path learned from a backend's response head.
type respHead struct {
	code          int
	contentLength int64 // -1 if none
	chunked       bool
	closeConn     bool // the backend closes the connection after this response
	bodyless      bool // no body whatever the framing fields say (HEAD, 1xx, 204, 304)
	dropNamed     bool // a Connection field named other fields, to be removed
	hasDate       bool
	connValues    []byte // the Connection fields' values, comma-joined, when dropNamed
	trailerDecl   []byte // the Trailer field lines, passed on for a chunked response
}

// keptField is a response field line passed on: where it starts in out and its name.
type keptField struct{ start, end, nameEnd int }

// attemptResult is the outcome of one attempt.
type attemptResult struct {
	started bool  // the response head was taken: no retry from here
	broken  bool  // the backend broke the body off after it started
	gone    bool  // the client went away
	code    int   // status of a started response
	err     error // why the attempt failed before a response, when !started && !gone
}

// dispatch proxies the prepared request with the Proxy's rules (see ServeHTTP) and writes the
// answer, and reports whether the client connection may carry another request.
func (fc *fastConn) dispatch(cfg *ProxyConfig) bool {
	p := fc.f.p
	pol := p.policy.Load().Policy
	p.budget.request()
	t := &fc.tries
	t.reset()
	defer p.finish(t)

	var (
		last     *Backend
		reason   string
		attempts int
		sawFull  bool
		res      attemptResult
	)
	for attempts < 1+cfg.MaxRetries {
		b, full := p.pick(t, cfg, pol, true)
		sawFull = sawFull || full
		if b == nil {
			break
		}
		attempts++
		last = b
		res = fc.attempt(b)
		if res.started || res.gone {
			break
		}
		var retry bool
		if reason, retry = p.afterFailure(b, res.err, fc.method, true, attempts, cfg); !retry {
			break
		}
	}

	var code int
	switch {
	case res.gone:
		code = 499 // client went away: not the backend's fault
	case res.broken:
		code = res.code
		p.countBroken(last)
	case res.started:
		code = res.code
	default:
		c, msg := failureStatus(last, sawFull, reason)
		code = c
		fc.writeError(c, msg)
	}
	p.countRequest(last, code, fc.begin)
	fc.log(code, last, attempts, res.broken && !res.gone)
	// The end of the answer goes out last, as net/http's final flush after the handler: a
	// client that has it sees the request counted, logged and its backend connection back in
	// the idle pool (or closed).
	if res.gone {
		fc.out = fc.out[:0]
		return false
	}
	if !fc.flush() || res.broken {
		return false
	}
	return res.started || !fc.isGone()
}

// attempt sends the request to b once (and once more on a fresh connection when a reused one
// turns out closed, by net/http's rule) and, if a response head comes back, relays the
// response to the client.
func (fc *fastConn) attempt(b *Backend) (res attemptResult) {
	b.requests.Add(1)
	defer b.release()
	start := time.Now()
	perTry := time.Duration(fc.f.p.pool.perTryNS.Load())
	mark := len(fc.out)
	var sc *syncConn
	for try := 0; ; try++ {
		var reused bool
		var err error
		sc, reused, err = b.sync.conn(context.Background(), try > 0)
		if err != nil {
			if fc.isGone() {
				res.gone = true
			}
			res.err = err
			return res
		}
		if !fc.use(sc) {
			_ = sc.c.Close()
			res.gone = true
			return res
		}
		written, read := sc.nwrite, sc.nread
		err = fc.exchange(sc, perTry)
		if err == nil {
			break
		}
		fe := sc.failure(err, written, read)
		fc.unuse()
		_ = sc.c.Close()
		if fc.isGone() {
			res.gone = true
			return res
		}
		if try == 0 && reused && fe.retryOnNewConn(replayableMethod(fc.method, fc.idemKey)) {
			fc.out = fc.out[:mark] // the backend had closed this idle connection: once more
			continue
		}
		res.err = err
		return res
	}
	b.observeLatency(time.Since(start))
	if o := fc.f.p.observer; o != nil {
		o.Observe(b.name, false)
	}
	res.started, res.code = true, fc.resp.code
	keep, err := fc.relayBody(sc)
	switch {
	case err == nil:
	case fc.isGone():
		res.gone = true
	default:
		res.broken = true
		fc.flush() // what there is of it: the client sees the response cut
	}
	fc.unuse()
	sc.finish(keep && err == nil)
	return res
}

// finish ends the fast path's use of sc: back to the idle pool if keep and it was not
// aborted, else closed.
func (sc *syncConn) finish(keep bool) {
	sc.mu.Lock()
	keep = keep && !sc.cancelled
	sc.mu.Unlock()
	if keep && sc.br.Buffered() == 0 {
		sc.t.put(sc)
		return
	}
	_ = sc.c.Close()
}

// exchange writes the request on sc and reads the final response head into fc.resp and the
// head for the client into fc.out (interim 1xx answers are passed on as they come).
func (fc *fastConn) exchange(sc *syncConn, perTry time.Duration) error {
	if sc.br.Buffered() > 0 {
		return errors.New("backend sent bytes before the request")
	}
	_, _ = sc.bw.Write(fc.fwd)
	if len(fc.body) > 0 {
		_, _ = sc.bw.Write(fc.body)
	}
	if err := sc.bw.Flush(); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if perTry > 0 {
		sc.setReadDeadline(time.Now().Add(perTry))
	}
	for n1xx := 0; ; n1xx++ {
		mark := len(fc.out) // a head refused below never reaches the client
		if err := fc.readResponseHead(sc.br); err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		code := fc.resp.code
		if code >= 200 {
			break
		}
		if code == 101 {
			fc.out = fc.out[:mark]
			return errors.New("backend switched protocols unasked")
		}
		if n1xx == max1xx {
			fc.out = fc.out[:mark]
			return errors.New("too many 1xx informational responses")
		}
		if !fc.flush() { // pass the interim answer on now
			return errors.New("client gone")
		}
	}
	if perTry > 0 {
		sc.setReadDeadline(time.Time{}) // the per-try timeout never bounds the body
	}
	return nil
}

// readResponseHead reads one response head from br. It appends the head the client gets to
// fc.out: the status line as net/http writes it, the backend's fields minus hop-by-hop ones
// and X-Request-Id, then X-Request-Id, Strict-Transport-Security, Date if missing, the
// framing field and Connection: close if the client connection ends after it.
func (fc *fastConn) readResponseHead(br *bufio.Reader) error {
	budget := maxResponseHeaderBytes
	line, err := fc.readLine(br, &budget)
	if err != nil {
		return err
	}
	minor, code, err := h1.ParseStatusLine(line)
	if err != nil {
		return err
	}
	r := &fc.resp
	*r = respHead{code: code, contentLength: -1, connValues: r.connValues[:0], trailerDecl: r.trailerDecl[:0]}
	r.bodyless = fc.isHead || code < 200 || code == 204 || code == 304
	keepAlive := false
	hsts := fc.f.opts.TLS && fc.set.HSTS != ""
	start := len(fc.out)
	fc.out = h1.AppendStatusLine(fc.out, code)
	fc.kept = fc.kept[:0]
	teSeen := false
	for {
		line, err := fc.readLine(br, &budget)
		if err != nil {
			fc.out = fc.out[:start]
			return err
		}
		if len(line) == 0 {
			break
		}
		name, value, err := h1.ParseField(line)
		if err != nil {
			fc.out = fc.out[:start]
			return err
		}
		switch h1.Classify(name) {
		case h1.KindConnection:
			for v := value; len(v) > 0; {
				var tok []byte
				tok, v = h1.NextToken(v)
				switch {
				case len(tok) == 0:
				case bytes.EqualFold(tok, []byte("close")):
					r.closeConn = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					keepAlive = true
				default:
					r.dropNamed = true
				}
			}
			r.connValues = append(append(r.connValues, value...), ',')
			continue
		case h1.KindTransferEncoding:
			if teSeen || !bytes.EqualFold(value, []byte("chunked")) {
				fc.out = fc.out[:start]
				return fmt.Errorf("unsupported transfer encoding %q", value)
			}
			teSeen, r.chunked = true, true
			continue
		case h1.KindContentLength:
			n, ok := h1.ParseContentLength(value)
			if !ok || (r.contentLength >= 0 && n != r.contentLength) {
				fc.out = fc.out[:start]
				return fmt.Errorf("bad or conflicting Content-Length %q", value)
			}
			r.contentLength = n
			continue
		case h1.KindTrailer:
			r.trailerDecl = append(append(r.trailerDecl, line...), "\r\n"...)
			continue
		case h1.KindKeepAlive, h1.KindProxyConnection, h1.KindProxyAuthenticate, h1.KindProxyAuthorization,
			h1.KindTE, h1.KindUpgrade, h1.KindXRequestID:
			continue
		case h1.KindStrictTransportSecurity:
			if hsts {
				continue // lb's own value replaces it
			}
		case h1.KindDate:
			r.hasDate = true
		}
		at := len(fc.out) // ParseField refused control characters: the line goes as it is
		fc.out = append(fc.out, line...)
		fc.out = append(fc.out, "\r\n"...)
		fc.kept = append(fc.kept, keptField{start: at, end: len(fc.out), nameEnd: at + len(name)})
	}
	if r.dropNamed {
		fc.dropConnectionNamed()
	}
	if minor == 0 && !keepAlive {
		r.closeConn = true
	}
	fc.out = appendField(fc.out, "X-Request-Id: ", fc.id)
	if hsts {
		fc.out = appendField(fc.out, "Strict-Transport-Security: ", fc.set.HSTS)
	}
	if code < 200 {
		fc.out = append(fc.out, "\r\n"...)
		return nil
	}
	if !r.chunked && r.contentLength < 0 && !r.bodyless {
		r.closeConn = true // the body runs until the backend closes
	}
	if !r.hasDate {
		fc.out = append(fc.out, "Date: "...)
		fc.out = fc.f.dates.Append(fc.out, time.Now())
		fc.out = append(fc.out, "\r\n"...)
	}
	switch {
	case r.chunked && !r.bodyless, !r.chunked && r.contentLength < 0 && !r.bodyless:
		fc.out = append(fc.out, "Transfer-Encoding: chunked\r\n"...)
		fc.out = append(fc.out, r.trailerDecl...)
	case r.contentLength >= 0 && !r.chunked:
		fc.out = append(fc.out, "Content-Length: "...)
		fc.out = strconv.AppendInt(fc.out, r.contentLength, 10)
		fc.out = append(fc.out, "\r\n"...)
	}
	if fc.closeConn || fc.f.closing.Load() {
		fc.closeConn = true
		fc.out = append(fc.out, "Connection: close\r\n"...)
	}
	fc.out = append(fc.out, "\r\n"...)
	return nil
}

// dropConnectionNamed removes from the head in fc.out the fields a Connection field
// named (RFC 9110 section 7.6.1), compacting out.
func (fc *fastConn) dropConnectionNamed() {
	w := -1 // write position once something was removed
	for _, k := range fc.kept {
		named := h1.HasToken(fc.resp.connValues, string(fc.out[k.start:k.nameEnd]))
		switch {
		case named && w < 0:
			w = k.start
		case !named && w >= 0:
			w += copy(fc.out[w:], fc.out[k.start:k.end])
		}
	}
	if w >= 0 {
		fc.out = fc.out[:w]
	}
}

// readLine reads one line from br without its LF or CR LF. A line longer than br's buffer is
// gathered in fc.scratch. budget bounds the bytes read for a head.
func (fc *fastConn) readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	*budget -= len(line)
	if err == bufio.ErrBufferFull {
		fc.scratch = append(fc.scratch[:0], line...)
		for err == bufio.ErrBufferFull && *budget >= 0 {
			line, err = br.ReadSlice('\n')
			*budget -= len(line)
			fc.scratch = append(fc.scratch, line...)
		}
		line = fc.scratch
	}
	if *budget < 0 {
		return nil, errHeadersTooLarge
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// errClientGone ends a body copy whose client went away.
var errClientGone = errors.New("client gone")

// relayBody copies the body after the response head gathered in fc.out to the client. keep
// reports whether the backend connection may be reused. Pending bytes are written to the
// client whenever the next backend read would wait, so streams stay live; the last of them
// stay in fc.out for dispatch, so a small response leaves in one write.
func (fc *fastConn) relayBody(sc *syncConn) (keep bool, err error) {
	r := &fc.resp
	switch {
	case r.bodyless:
		err = nil
	case r.chunked:
		err = fc.copyChunked(sc.br)
	case r.contentLength >= 0:
		err = fc.copyN(sc.br, r.contentLength)
	default:
		err = fc.copyUntilEOF(sc.br)
	}
	if err != nil {
		if fc.isGone() {
			return false, errClientGone
		}
		return false, err
	}
	return !r.closeConn, nil // the tail of the answer is still in fc.out, for dispatch to write
}

// copyN copies n body bytes from br to the client.
func (fc *fastConn) copyN(br *bufio.Reader, n int64) error {
	for n > 0 {
		if k := br.Buffered(); k > 0 {
			take := int(min(int64(k), n))
			b, _ := br.Peek(take)
			fc.out = append(fc.out, b...)
			_, _ = br.Discard(take)
			n -= int64(take)
			fc.bytes += int64(take)
			if len(fc.out) >= outFlushSize && !fc.flush() {
				return errClientGone
			}
			continue
		}
		if !fc.flush() { // the next read waits: what we have goes now
			return errClientGone
		}
		if n < int64(br.Size()) {
			if _, err := br.Peek(1); err != nil {
				return bodyErr(err)
			}
			continue
		}
		buf := fc.f.copyBuf()
		m, err := br.Read(buf[:min(n, int64(len(buf)))])
		if m > 0 {
			n -= int64(m)
			fc.bytes += int64(m)
			if !fc.write(buf[:m]) {
				fc.f.copyBufs.Put(buf)
				return errClientGone
			}
		}
		fc.f.copyBufs.Put(buf)
		if err != nil && n > 0 {
			return bodyErr(err)
		}
	}
	return nil
}

// bodyErr turns the end of a body before its length into an error.
func bodyErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// maxChunkLineBytes bounds a chunk-size line and the trailer section.
const maxChunkLineBytes = 64 << 10

// copyChunked copies a chunked body from br to the client, chunk by chunk (extensions
// dropped), then the trailer fields.
func (fc *fastConn) copyChunked(br *bufio.Reader) error {
	for {
		budget := maxChunkLineBytes
		line, err := fc.readLine(br, &budget)
		if err != nil {
			return err
		}
		size, err := h1.ParseChunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			break
		}
		fc.out = strconv.AppendInt(fc.out, size, 16)
		fc.out = append(fc.out, "\r\n"...)
		if err := fc.copyN(br, size); err != nil {
			return err
		}
		if line, err = fc.readLine(br, &budget); err != nil {
			return err
		}
		if len(line) != 0 {
			return errors.New("malformed chunked encoding")
		}
		fc.out = append(fc.out, "\r\n"...)
		if br.Buffered() == 0 && !fc.flush() { // the backend sent this part on its own: pass it on
			return errClientGone
		}
	}
	fc.out = append(fc.out, "0\r\n"...)
	budget := maxChunkLineBytes
	for {
		line, err := fc.readLine(br, &budget)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if _, _, err := h1.ParseField(line); err != nil {
			return err
		}
		fc.out = append(fc.out, line...)
		fc.out = append(fc.out, "\r\n"...)
	}
	fc.out = append(fc.out, "\r\n"...)
	return nil
}

// copyUntilEOF copies a body that ends when the backend closes, chunked for the client.
func (fc *fastConn) copyUntilEOF(br *bufio.Reader) error {
	buf := fc.f.copyBuf()
	defer fc.f.copyBufs.Put(buf)
	for {
		if br.Buffered() == 0 && !fc.flush() {
			return errClientGone
		}
		n, err := br.Read(buf[:])
		if n > 0 {
			fc.bytes += int64(n)
			fc.out = strconv.AppendInt(fc.out, int64(n), 16)
			fc.out = append(fc.out, "\r\n"...)
			fc.out = append(fc.out, buf[:n]...)
			fc.out = append(fc.out, "\r\n"...)
			if len(fc.out) >= outFlushSize && !fc.flush() {
				return errClientGone
			}
		}
		if err == io.EOF {
			fc.out = append(fc.out, "0\r\n\r\n"...)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeError answers with a small JSON error (msg is a fixed text, never an internal error).
func (fc *fastConn) writeError(code int, msg string) {
	body := len(`{"error":""}`+"\n") + len(msg)
	o := h1.AppendStatusLine(fc.out[:0], code)
	o = append(o, "Cache-Control: no-store\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"...)
	o = appendField(o, "X-Request-Id: ", fc.id)
	if fc.f.opts.TLS && fc.set.HSTS != "" {
		o = appendField(o, "Strict-Transport-Security: ", fc.set.HSTS)
	}
	o = append(o, "Date: "...)
	o = fc.f.dates.Append(o, time.Now())
	o = append(o, "\r\nContent-Length: "...)
	o = strconv.AppendInt(o, int64(body), 10)
	o = append(o, "\r\n"...)
	if fc.closeConn || fc.f.closing.Load() {
		fc.closeConn = true
		o = append(o, "Connection: close\r\n"...)
	}
	o = append(o, "\r\n"...)
	if !fc.isHead {
		o = append(o, `{"error":"`...)
		o = append(o, msg...)
		o = append(o, "\"}\n"...)
		fc.bytes = int64(body)
	}
	fc.out = o // written by dispatch
}
