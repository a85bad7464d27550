package balancer

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
)

// Request body modes.
const (
	bodyNone     = iota // no body
	bodyBuffered        // whole body in memory: replayable
	bodyStream          // larger than retry_body_bytes: replayable only if no byte was read
)

// streamBody is a body too large to buffer. It counts what the transport read, and Close does
// nothing, so the same body can go to another backend when a dial failed before any read.
type streamBody struct {
	r io.Reader
	n atomic.Int64
}

func (s *streamBody) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n.Add(int64(n))
	return n, err
}

func (s *streamBody) Close() error { return nil }

// bufferBody reads the request body up to limit bytes into st. A larger body becomes a stream
// of what was read followed by the rest.
func (st *reqState) bufferBody(r *http.Request, limit int64) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		st.bodyMode = bodyNone
		return nil
	}
	if r.ContentLength > limit {
		st.bodyMode = bodyStream
		st.stream.r = r.Body
		return nil
	}
	size := r.ContentLength
	if size < 0 {
		size = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return err
	}
	if int64(buf.Len()) > limit {
		st.bodyMode = bodyStream
		st.stream.r = io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body)
		return nil
	}
	st.bodyMode = bodyBuffered
	st.body = buf.Bytes()
	return nil
}

// setBody gives the outgoing request of one attempt its body.
func (st *reqState) setBody(out, in *http.Request) {
	switch st.bodyMode {
	case bodyBuffered:
		body := st.body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
		out.TransferEncoding = nil
	case bodyStream:
		out.Body = &st.stream
		out.GetBody = nil
	default:
		out.Body = in.Body
	}
}

// replayable reports whether the body can be sent again after a failed attempt.
func (st *reqState) replayable() bool {
	switch st.bodyMode {
	case bodyStream:
		return st.stream.n.Load() == 0
	}
	return true
}
