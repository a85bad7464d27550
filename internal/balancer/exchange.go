package balancer

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"outrigger/internal/h1"
)

// maxResponseHeaderBytes bounds a response head (http.Transport's default limit).
const maxResponseHeaderBytes = 10 << 20

// max1xx bounds the interim answers passed on before the final one (as http.Transport).
const max1xx = 5

// Errors of an exchange that are the backend's doing.
var (
	errUnsolicited    = errors.New("backend sent bytes before the request")
	errUnasked101     = errors.New("backend switched protocols unasked")
	errTooMany1xx     = errors.New("too many 1xx informational responses")
	errHeadersTooLong = errors.New("response headers exceed 10 MiB")
)

// exchange is lb's one backend HTTP/1 exchange, for every front end: it writes req's head
// and body on bc and reads the head of the final answer into st.resp, which stays in bc's
// buffer (the caller discards it once the client has it). Interim answers go to the client
// as they come (but 100 Continue: lb answered the client's expectation itself). perTry
// bounds the wait from the request fully written to the answer's head; it never bounds the
// body. A streamed body is written while the answer is awaited, so that a backend that
// answers before reading all of it (413, a redirect) is heard; the rest of such a body is
// not sent (st.early is set), and the connection is not reused.
func (st *Forwarding) exchange(bc *backendConn, req *Request, client Client, perTry time.Duration) error {
	if len(bc.rd.Buffered()) > 0 {
		return errUnsolicited
	}
	st.early = false
	if req.Body.Streamed() {
		return st.exchangeStreamed(bc, req, client, perTry)
	}
	st.framing = appendFraming(st.framing[:0], &req.Body, req.Framed)
	_, _ = bc.bw.Write(req.Head)
	_, _ = bc.bw.Write(st.framing)
	if len(req.Body.Bytes) > 0 {
		_, _ = bc.bw.Write(req.Body.Bytes)
	}
	if err := bc.bw.Flush(); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	if perTry > 0 {
		bc.setReadDeadline(time.Now().Add(perTry))
	}
	if err := st.readFinalHead(bc, req, client); err != nil {
		return err
	}
	if perTry > 0 {
		bc.setReadDeadline(time.Time{}) // the per-try timeout never bounds the body
	}
	return nil
}

// exchangeStreamed is exchange for a body streamed from the client.
func (st *Forwarding) exchangeStreamed(bc *backendConn, req *Request, client Client, perTry time.Duration) error {
	st.framing = appendFraming(st.framing[:0], &req.Body, req.Framed)
	written := make(chan error, 1)
	go func() {
		err := writeStreamed(bc, req, st.framing, &st.p.bufs)
		var cbe *ClientBodyError
		switch {
		case errors.As(err, &cbe):
			bc.Abort() // the client stalled or left: no answer will come
		case err == nil && perTry > 0:
			bc.setReadDeadline(time.Now().Add(perTry))
		}
		written <- err
	}()
	err := st.readFinalHead(bc, req, client)
	var werr error
	select {
	case werr = <-written:
	default:
		// The writer is still at it: answered before the body was sent (stop sending it),
		// or the answer failed (the body goes nowhere, and cannot be sent again).
		st.early = err == nil
		if st.early {
			_ = bc.c.SetWriteDeadline(aLongTimeAgo)
		} else {
			bc.Abort()
		}
		req.Body.Src.Interrupt()
		req.Body.started = true
		werr = <-written
	}
	var cbe *ClientBodyError
	switch {
	case errors.As(werr, &cbe) && !st.early:
		return werr // the client's doing, not the backend's
	case err != nil:
		return err
	case werr != nil && !st.early:
		return fmt.Errorf("write request: %w", werr)
	}
	if perTry > 0 {
		bc.setReadDeadline(time.Time{})
	}
	return nil
}

// writeStreamed writes req's head and its streamed body to bc: what was buffered of it, then
// the rest as the client sends it, chunked when its length is not known.
func writeStreamed(bc *backendConn, req *Request, framing []byte, bufs *copyBufs) error {
	body := &req.Body
	chunked := body.Length < 0
	_, _ = bc.bw.Write(req.Head)
	_, _ = bc.bw.Write(framing)
	sent := int64(0)
	write := func(p []byte) error {
		if chunked {
			var size [20]byte
			_, _ = bc.bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
			_, _ = bc.bw.WriteString("\r\n")
		}
		_, _ = bc.bw.Write(p)
		if chunked {
			_, _ = bc.bw.WriteString("\r\n")
		}
		sent += int64(len(p))
		return bc.bw.Flush()
	}
	if len(body.Bytes) > 0 {
		if err := write(body.Bytes); err != nil {
			return err
		}
	}
	buf := bufs.get()
	defer bufs.put(buf)
	for {
		n, err := body.Src.Read(buf[:])
		if n > 0 {
			body.started = true
			if werr := write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == io.EOF && chunked:
			_, _ = bc.bw.WriteString("0\r\n\r\n")
			return bc.bw.Flush()
		case err == io.EOF && sent != body.Length:
			return &ClientBodyError{Err: io.ErrUnexpectedEOF}
		case err == io.EOF:
			return nil
		case err != nil:
			return &ClientBodyError{Err: err}
		}
	}
}

// readFinalHead reads answer heads from bc until the final one, which it leaves parsed in
// st.resp and unconsumed in bc's buffer; interim ones go to the client.
func (st *Forwarding) readFinalHead(bc *backendConn, req *Request, client Client) error {
	for n1xx := 0; ; {
		if err := readResponseHead(bc, &st.resp); err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		code := st.resp.Code
		switch {
		case code >= 200:
			return nil
		case code == 101 && req.Upgrade == "":
			return errUnasked101
		case code == 101:
			return nil
		case n1xx == max1xx:
			return errTooMany1xx
		}
		n1xx++
		if code != 100 {
			st.kept = filterResponse(&st.head, st.kept, &st.resp, req, false)
			if err := client.Interim(&st.head); err != nil {
				return errClientGone
			}
		}
		bc.rd.Discard(st.resp.HeadLen)
	}
}

// readResponseHead reads from bc until a whole answer head is buffered, and parses it into r.
func readResponseHead(bc *backendConn, r *h1.Response) error {
	from := 0
	for {
		buf := bc.rd.Buffered()
		if h1.HeadEnd(buf, from) || len(buf) >= len("HTTP/1.1 200") && !validStatusStart(buf) {
			if err := h1.ParseResponse(buf, r); err != h1.ErrIncomplete {
				return err
			}
		}
		from = max(len(buf)-2, 0)
		switch err := bc.rd.Fill(maxResponseHeaderBytes); {
		case errors.Is(err, h1.ErrHeadTooLarge):
			return errHeadersTooLong
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		}
	}
}

// validStatusStart reports whether buf starts like a status line: garbage from a backend is
// refused at once rather than read until its first empty line.
func validStatusStart(buf []byte) bool {
	return string(buf[:len("HTTP/1.")]) == "HTTP/1."
}

// errClientGone ends an exchange or a body copy whose client went away.
var errClientGone = errors.New("client gone")
