package frontend

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"outrigger/internal/lbtest"
)

// FuzzFraming sends the same bytes through lb's real front end, on both of its paths (lb's
// own loop, and net/http behind the gate as with LB_FAST_PATH=off), over plain TCP and TLS,
// at each of the four positions of a connection DESIGN's protocol hygiene names, to a
// backend that records what it receives. For every run it checks, against what the client
// framed (http.ReadRequest over the same bytes, request after request):
//   - each request the backend receives is exactly one request the client framed, in
//     order, with the same method, target and body bytes;
//   - an answer of lb's own is a refusal (400, 417 or 431), the last answer, and the
//     connection then closes;
//   - every request the backend received gets its answer, in order (and OPTIONS *, which lb
//     answers itself, its 200).
//
// The seed corpus (smugglingCorpus) runs with every go test; `make fuzz` fuzzes from it.
func FuzzFraming(f *testing.F) {
	for _, s := range smugglingCorpus {
		f.Add([]byte(s.payload))
	}
	fr := newFramingRig(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 256<<10 {
			return
		}
		for _, front := range fr.fronts {
			for _, pos := range framingPositions {
				// A short wait for silence keeps the fuzzer fast; a failure is checked once
				// more with a long one, so that a loaded machine's pause is not taken for a bug.
				if err := fr.check(t, front, pos, payload, 50*time.Millisecond); err != nil {
					if err := fr.check(t, front, pos, payload, 2*time.Second); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}

// framingSentinel ends what the client sends after a payload.
const framingSentinel = "GET /end-of-payload HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"

// framingPosition is where on a connection the payload goes: after which exchange.
type framingPosition struct {
	name   string
	prefix string // a request answered first ("" for none)
}

var framingPositions = []framingPosition{
	{"first", ""},
	{"after an HTTP/1.0 keep-alive request", "GET /pos/http10 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"},
	{"after a refused Upgrade", "GET /pos/upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
	{"after a chunked body", "POST /pos/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
}

// framedRequest is a request as the client framed it.
type framedRequest struct {
	method, target string
	body           []byte
	asterisk       bool // OPTIONS *: lb answers it itself
}

// clientFraming reads payload as the requests a client sent, with http.ReadRequest, up to
// the first it cannot read whole.
func clientFraming(payload []byte) []framedRequest {
	var out []framedRequest
	br := bufio.NewReader(bytes.NewReader(payload))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out
		}
		out = append(out, framedRequest{method: req.Method, target: originOf(req.RequestURI), body: body,
			asterisk: req.RequestURI == "*"})
	}
}

// originOf is the target a backend gets for a request-target: an absolute-form one cut to
// its path and query.
func originOf(t string) string {
	if strings.HasPrefix(t, "/") || t == "*" {
		return t
	}
	if i := strings.Index(t, "://"); i >= 0 {
		rest := t[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			return "/"
		}
		if rest[j] == '?' {
			return "/" + rest[j:]
		}
		return rest[j:]
	}
	return t
}

// check runs payload through front at pos and checks what the backend and the client saw.
// The client half-closes once nothing was in flight and nothing arrived for silence.
func (fr *framingRig) check(t *testing.T, front framingFront, pos framingPosition, payload []byte, silence time.Duration) error {
	t.Helper()
	where := front.name + ", " + pos.name
	fr.rec.Reset()
	c, err := net.Dial("tcp", front.addr)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	defer c.Close()
	if front.tls != nil {
		tc := tls.Client(c, front.tls)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%s: handshake: %v", where, err)
		}
		c = tc
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	skip := 0
	if pos.prefix != "" {
		if _, err := io.WriteString(c, pos.prefix); err != nil {
			t.Fatalf("%s: prefix: %v", where, err)
		}
		res, err := readFinal(br, "GET")
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
		}
		if err != nil || res.StatusCode != 200 || res.Close {
			t.Fatalf("%s: the prefix was not answered 200 on a kept connection: %v %v", where, res, err)
		}
		skip = 1
	}
	// The client sends the payload, then a last request that asks to close: if lb frames the
	// payload as the client did, it answers that one too and closes. Should the payload leave
	// lb waiting for more (an incomplete head or body), the client half-closes once nothing
	// is in flight and nothing arrives for a while, and lb closes then. (A client that
	// half-closes while a request is in flight is gone for lb, as for net/http: it is not
	// done earlier.)
	sent := append(append([]byte(nil), payload...), framingSentinel...)
	go func() { _, _ = c.Write(sent) }() // while answers are read: a large payload may fill the buffers
	framed := clientFraming(sent)
	type answer struct {
		res  *http.Response
		body string
	}
	got := make(chan answer)
	var readErr error
	go func() {
		defer close(got)
		for n := 0; ; n++ {
			method := "GET"
			if n < len(framed) {
				method = framed[n].method
			}
			res, err := readFinal(br, method)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(res.Body)
			}
			if err != nil {
				readErr = err
				return
			}
			got <- answer{res, string(body)}
		}
	}()
	var answers []*http.Response
	var bodies []string
	halfClosed := false
	for done := false; !done; {
		select {
		case a, ok := <-got:
			if !ok {
				done = true
				break
			}
			answers, bodies = append(answers, a.res), append(bodies, a.body)
		case <-time.After(silence):
			if st, err := fr.pool.Get("rec"); !halfClosed && err == nil && st.InFlight == 0 {
				if cw, ok := c.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				halfClosed = true
			}
		}
	}
	fr.awaitIdle(t)
	var received []lbtest.Recorded
	for _, r := range fr.rec.Requests() {
		if r.BodyErr == nil { // a body lb cut (the client stopped sending) is no request received
			received = append(received, r)
		}
	}
	if len(received) < skip {
		t.Fatalf("%s: the backend did not receive the prefix request", where)
	}
	received = received[skip:]
	fail := func(format string, args ...any) error {
		args = append([]any{where, payload}, args...)
		args = append(args, describe(framed, received, answers, bodies, readErr))
		return fmt.Errorf("%s: payload %q: "+format+"\n%s", args...)
	}
	// Each request the backend received is the next request the client framed.
	fi := 0
	for i, r := range received {
		for fi < len(framed) && framed[fi].asterisk {
			fi++
		}
		if fi == len(framed) {
			return fail("the backend received request %d (%s %s) that the client did not frame", i+1, r.Method, r.Target)
		}
		want := framed[fi]
		if r.Method != want.method || r.Target != want.target || !bytes.Equal(r.Body, want.body) {
			return fail("request %d: the backend received %s %s with body %q; the client framed %s %s with body %q",
				i+1, r.Method, r.Target, r.Body, want.method, want.target, want.body)
		}
		fi++
	}
	// One answer per request, in order; an answer of lb's own is a refusal, the last, with a close.
	ri := 0
	for i, res := range answers {
		last := i == len(answers)-1
		switch {
		case ri < len(received) && echoes(res, bodies[i], &received[ri]):
			ri++
		case i < len(framed) && framed[i].asterisk && res.StatusCode == 200 && bodies[i] == "":
		case res.StatusCode == 400 || res.StatusCode == 417 || res.StatusCode == 431:
			if !last {
				return fail("answer %d: a refusal (%d) was not the last answer", i+1, res.StatusCode)
			}
			if !res.Close {
				return fail("answer %d: a refusal (%d) without Connection: close", i+1, res.StatusCode)
			}
		default:
			return fail("answer %d: %s %q answers nothing the backend received", i+1, res.Status, bodies[i])
		}
	}
	if ri != len(received) {
		return fail("the backend received %d requests, the client got %d of their answers", len(received), ri)
	}
	var ne net.Error
	if errors.As(readErr, &ne) && ne.Timeout() {
		return fail("lb neither answered nor closed the connection in time")
	}
	return nil
}

// echoes reports whether an answer is the recording backend's to r: its echo, or for HEAD
// the echo's length and no body.
func echoes(res *http.Response, body string, r *lbtest.Recorded) bool {
	echo := lbtest.EchoBody(r)
	if r.Method == http.MethodHead {
		return body == "" && res.ContentLength == int64(len(echo))
	}
	return body == echo
}

// readFinal reads the next answer that is not an interim one.
func readFinal(br *bufio.Reader, method string) (*http.Response, error) {
	for {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil, err
		}
		if res.StatusCode >= 200 || res.StatusCode == 101 {
			return res, nil
		}
	}
}

// awaitIdle waits until lb has no request in flight to the backend: every request of the
// connection is recorded (or cut) by then.
func (fr *framingRig) awaitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := fr.pool.Get("rec")
		if err == nil && st.InFlight == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests still in flight to the backend after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// describe renders what the client framed, what the backend received and what the client
// got, for a failure message.
func describe(framed []framedRequest, received []lbtest.Recorded, answers []*http.Response, bodies []string, readErr error) string {
	var b strings.Builder
	b.WriteString("the client framed:")
	for _, f := range framed {
		b.WriteString("\n  " + f.method + " " + f.target + " body " + quote(f.body))
	}
	b.WriteString("\nthe backend received:")
	for _, r := range received {
		b.WriteString("\n  " + r.Method + " " + r.Target + " body " + quote(r.Body))
	}
	b.WriteString("\nthe client got:")
	for i, a := range answers {
		b.WriteString("\n  " + a.Status + " " + quote([]byte(bodies[i])))
	}
	if readErr != nil {
		b.WriteString("\nthen: " + readErr.Error())
	}
	return b.String()
}

func quote(b []byte) string {
	if len(b) > 200 {
		b = append(b[:200:200], "..."...)
	}
	return strings.ReplaceAll(strings.ReplaceAll(string(b), "\r", `\r`), "\n", `\n`)
}
