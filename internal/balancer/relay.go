package balancer

import (
	"errors"
	"io"
	"sync"

	"outrigger/internal/h1"
)

// copyBufSize is the buffer a large body is copied through, straight from the backend's
// socket to the client's.
const copyBufSize = 32 << 10

// copyBufs recycles the buffers large bodies are copied through.
type copyBufs struct{ p sync.Pool }

func (c *copyBufs) get() *[copyBufSize]byte {
	if b, ok := c.p.Get().(*[copyBufSize]byte); ok {
		return b
	}
	return new([copyBufSize]byte)
}

func (c *copyBufs) put(b *[copyBufSize]byte) { c.p.Put(b) }

// errBackendBody is a body the backend broke off or framed wrongly.
type errBackendBody struct{ err error }

func (e *errBackendBody) Error() string { return "response body: " + e.err.Error() }
func (e *errBackendBody) Unwrap() error { return e.err }

// relay copies the body of the answer in st.resp (its head consumed) from bc to the client,
// then finishes it. keep reports whether bc may carry another request. An error is
// errClientGone when writing to the client failed, else an *errBackendBody. What the client
// got is flushed whenever the next read from the backend would wait, so that streams stay
// live; the last bytes stay with the client for the front end to flush.
func (st *Forwarding) relay(bc *backendConn, client Client, head bool) (keep bool, err error) {
	switch st.resp.Body(head) {
	case h1.BodyNone:
		err = nil
	case h1.BodyLength:
		err = st.copyN(bc, client, st.resp.ContentLength)
	case h1.BodyChunked:
		err = st.copyChunked(bc, client)
	default:
		err = st.copyUntilEOF(bc, client)
	}
	if err != nil {
		return false, err
	}
	if st.resp.Body(head) != h1.BodyChunked {
		if client.Finish(nil) != nil {
			return false, errClientGone
		}
	}
	return !st.resp.Close && !st.early, nil
}

// send passes p to the client and counts it.
func (st *Forwarding) send(client Client, p []byte) error {
	if client.Write(p) != nil {
		return errClientGone
	}
	st.bytes += int64(len(p))
	return nil
}

// fill reads more from the backend once the client has what there is: the next read may wait.
func (st *Forwarding) fill(bc *backendConn, client Client) error {
	if client.Flush() != nil {
		return errClientGone
	}
	if err := bc.rd.Fill(bc.rd.Size()); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &errBackendBody{err}
	}
	return nil
}

// copyN copies n body bytes: what is buffered, then large reads straight through a copy
// buffer.
func (st *Forwarding) copyN(bc *backendConn, client Client, n int64) error {
	for n > 0 {
		if buf := bc.rd.Buffered(); len(buf) > 0 {
			take := int(min(int64(len(buf)), n))
			if err := st.send(client, buf[:take]); err != nil {
				return err
			}
			bc.rd.Discard(take)
			n -= int64(take)
			continue
		}
		if n < int64(bc.rd.Size()) {
			if err := st.fill(bc, client); err != nil {
				return err
			}
			continue
		}
		if err := st.copyDirect(bc, client, n, &n); err != nil {
			return err
		}
	}
	return nil
}

// copyDirect reads up to limit bytes from the backend into a copy buffer (the read buffer is
// empty) and sends them; *left is decreased by what was sent.
func (st *Forwarding) copyDirect(bc *backendConn, client Client, limit int64, left *int64) error {
	if client.Flush() != nil {
		return errClientGone
	}
	buf := st.p.bufs.get()
	defer st.p.bufs.put(buf)
	m, err := bc.rd.Read(buf[:min(limit, copyBufSize)])
	if m > 0 {
		*left -= int64(m)
		if serr := st.send(client, buf[:m]); serr != nil {
			return serr
		}
	}
	if err != nil && (*left > 0 || err != io.EOF) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &errBackendBody{err}
	}
	return nil
}

// copyChunked copies a chunked body, its data as the client's Write takes it (the client
// frames it again), then passes on its trailer fields.
func (st *Forwarding) copyChunked(bc *backendConn, client Client) error {
	var ch h1.Chunked
	st.trailer = st.trailer[:0]
	for !ch.Done() {
		buf := bc.rd.Buffered()
		if len(buf) == 0 {
			if left := ch.DataLeft(); left >= int64(bc.rd.Size()) {
				before := left
				if err := st.copyDirect(bc, client, left, &left); err != nil {
					return err
				}
				ch.Skip(before - left)
				continue
			}
			if err := st.fill(bc, client); err != nil {
				return err
			}
			continue
		}
		trailing := ch.Trailing()
		n, data, err := ch.Next(buf)
		if err != nil {
			return &errBackendBody{err}
		}
		switch {
		case data:
			if err := st.send(client, buf[:n]); err != nil {
				return err
			}
		case trailing:
			st.trailer = append(st.trailer, buf[:n]...)
		}
		bc.rd.Discard(n)
	}
	trailers, err := h1.ParseTrailer(st.trailers[:0], st.trailer)
	if err != nil {
		return &errBackendBody{err}
	}
	st.trailers = trailers
	if client.Finish(trailers) != nil {
		return errClientGone
	}
	return nil
}

// copyUntilEOF copies a body that ends when the backend closes the connection.
func (st *Forwarding) copyUntilEOF(bc *backendConn, client Client) error {
	for {
		if buf := bc.rd.Buffered(); len(buf) > 0 {
			if err := st.send(client, buf); err != nil {
				return err
			}
			bc.rd.Discard(len(buf))
			continue
		}
		left := int64(copyBufSize)
		err := st.copyDirect(bc, client, copyBufSize, &left)
		var be *errBackendBody
		if errors.As(err, &be) && errors.Is(be.err, io.ErrUnexpectedEOF) {
			return nil // the end of the body
		}
		if err != nil {
			return err
		}
	}
}
