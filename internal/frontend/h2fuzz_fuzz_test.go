package frontend

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	"outrigger/internal/lbtest"
)

// FuzzH2Framing sends the same HTTP/2 conversation (h2Conv: streams one after the other,
// each waited for when the client ended it, then a sentinel request) to lb's own HTTP/2
// server and to net/http's (LB_FAST_PATH=off), over TLS with ALPN h2, in front of a backend
// that records every request as it framed it. The client marks each stream's head with an
// x-h2-stream field. It checks:
//
//   - for both servers, every request the backend received is one stream the client sent,
//     once, with its :method, its :path and byte for byte its DATA payloads, and no field
//     the client did not send as one field (no CR/LF injection, no extra line, no second
//     request); the backend (an echo) never fails, so no answer is a 502;
//   - for lb's own server, a stream malformed in its head (classify, RFC 9113 8.1-8.3) never
//     reaches the backend, one malformed after its head reaches it only with its declared
//     length's DATA once that was complete, every well-formed stream gets the backend's
//     answer, and the conversation ends in time;
//   - the two servers agree, stream by stream, on whether the request reached the backend,
//     but for the differences h2Differences lists.
//
// The seed corpus (h2SmugglingCorpus) runs with every go test; `make fuzz` fuzzes from it.
func FuzzH2Framing(f *testing.F) {
	for _, s := range h2SmugglingCorpus {
		f.Add(s.conv.encode())
	}
	rig := newH2Rig(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		conv := decodeH2Conv(in)
		// A short wait on streams the client left open keeps the fuzzer fast; a failure is
		// checked once more with a long one, so that a loaded machine is not taken for a bug.
		if err := rig.check(t, &conv, 50*time.Millisecond); err != nil {
			if err := rig.check(t, &conv, time.Second); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// h2Outcome is what happened to one stream on one server.
type h2Outcome struct {
	alive   bool // the connection could still take the stream when the client sent it
	answer  h2Answer
	reached bool
	rec     lbtest.Recorded
}

// h2Run is one conversation on one server.
type h2Run struct {
	front    string
	streams  []h2Outcome // the client's streams, then the sentinel
	problems []string    // what the backend received that no stream explains
	unmarked []lbtest.Recorded
	hung     string
}

// check runs conv through both servers and checks what the backend and the client saw.
func (rig *h2Rig) check(t *testing.T, conv *h2Conv, silence time.Duration) error {
	t.Helper()
	models := make([]h2Model, len(conv.reqs))
	for i := range conv.reqs {
		models[i] = classify(&conv.reqs[i])
	}
	var runs [2]*h2Run
	for i, front := range rig.fronts {
		runs[i] = rig.converse(t, front, conv, silence)
	}
	var errs []string
	for _, run := range runs {
		errs = append(errs, checkRun(conv, models, run, run == runs[0])...)
	}
	errs = append(errs, differ(conv, models, runs)...)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("input %q:\n%s\n%s", conv.encode(), strings.Join(errs, "\n"), describeH2(conv, models, runs))
}

// converse sends conv on a new connection to front, then the sentinel, and collects what
// the client got and what the backend received.
func (rig *h2Rig) converse(t *testing.T, front framingFront, conv *h2Conv, silence time.Duration) *h2Run {
	t.Helper()
	rig.rec.Reset()
	hc, err := dialH2(t, front)
	if err != nil {
		t.Fatalf("%s: %v", front.name, err)
	}
	defer hc.c.Close()
	run := &h2Run{front: front.name, streams: make([]h2Outcome, len(conv.reqs)+1)}
	// A stream is sent only to a connection that processed every frame before it (a PING
	// answered) and is not going away, so that both servers are asked the same.
	alive := func() bool {
		ok, hung := hc.barrier(5 * time.Second)
		if hung && run.hung == "" {
			run.hung = "a PING had no answer in 5s"
		}
		return ok
	}
	for i := range conv.reqs {
		q, id := &conv.reqs[i], uint32(2*i+1)
		if run.streams[i].alive = alive(); !run.streams[i].alive {
			break
		}
		send(hc, id, q)
		switch {
		case q.ended() && !hc.tr.wait(id, 5*time.Second):
			run.hung = fmt.Sprintf("stream %d, which the client ended, had no answer in 5s", id)
		case q.end == endNever:
			hc.tr.wait(id, silence)
		}
	}
	sentinel := uint32(2*len(conv.reqs) + 1)
	if run.streams[len(conv.reqs)].alive = alive(); run.streams[len(conv.reqs)].alive {
		_ = hc.writeHeaders(sentinel, h2Head("GET", "/h2-sentinel", sentinel), 0, true)
		if !hc.tr.wait(sentinel, 5*time.Second) && run.hung == "" {
			run.hung = "the sentinel stream had no answer in 5s"
		}
	}
	_ = hc.c.Close()
	<-hcDone(hc)
	rig.awaitIdle(t)
	hc.tr.mu.Lock()
	for i := range run.streams {
		run.streams[i].answer = *hc.tr.answer(uint32(2*i + 1))
	}
	hc.tr.mu.Unlock()
	for _, r := range rig.rec.Requests() {
		if r.BodyErr != nil {
			continue // a body lb cut: no request received
		}
		marks := r.Header["X-H2-Stream"]
		id := 0
		if len(marks) > 0 {
			id, _ = strconv.Atoi(marks[len(marks)-1])
		}
		switch i := (id - 1) / 2; {
		case id <= 0 || id%2 == 0 || i >= len(run.streams):
			run.unmarked = append(run.unmarked, r)
		case run.streams[i].reached:
			run.problems = append(run.problems, fmt.Sprintf("the backend received stream %d twice", id))
		default:
			run.streams[i].reached, run.streams[i].rec = true, r
		}
	}
	return run
}

// hcDone returns a channel closed once the client's read loop saw the connection end.
func hcDone(hc *h2FuzzClient) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !hc.tr.wait(0, time.Second) {
		}
	}()
	return done
}

// send writes one stream's frames; write errors are the connection's end, seen by the reader.
func send(hc *h2FuzzClient, id uint32, q *h2Req) {
	fields := append(append([]hpack.HeaderField(nil), q.fields...), hpack.HeaderField{Name: "x-h2-stream", Value: strconv.Itoa(int(id))})
	noFrames := len(q.data) == 0 && !q.hasTrailers && q.end != endEmptyData
	_ = hc.writeHeaders(id, fields, int(q.split), q.ended() && noFrames)
	for i, d := range q.data {
		last := i == len(q.data)-1 && !q.hasTrailers && q.end == endOnLast
		_ = hc.writeData(id, last, d, int(q.pad))
	}
	if q.end == endEmptyData {
		_ = hc.writeData(id, !q.hasTrailers, nil, 0)
	}
	if q.hasTrailers {
		_ = hc.writeHeaders(id, q.trailers, int(q.split), q.ended())
	}
	if q.end == endReset {
		_ = hc.writeRST(id)
	}
}

// h2Head is a well-formed request head.
func h2Head(method, path string, id uint32) []hpack.HeaderField {
	return []hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "lb.test"}, {Name: ":path", Value: path}, {Name: "x-h2-stream", Value: strconv.Itoa(int(id))}}
}

// checkRun checks one server's run: what reached the backend (both), and for lb's own
// server, the verdicts, the answers and the time.
func checkRun(conv *h2Conv, models []h2Model, run *h2Run, own bool) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, run.front+": "+fmt.Sprintf(format, args...)) }
	for _, p := range run.problems {
		fail("%s", p)
	}
	for _, r := range run.unmarked {
		if !own && trailersBecameRequest(conv, models, &r) {
			continue // see h2Differences
		}
		fail("the backend received %s %q, which no stream sent", r.Method, r.Target)
	}
	for i, o := range run.streams {
		id := 2*i + 1
		if o.answer.status >= 500 {
			fail("stream %d: answered %d (the backend never fails: lb sent it what it could not read)", id, o.answer.status)
		}
		if i == len(conv.reqs) {
			if o.reached && o.rec.Target != "/h2-sentinel" {
				fail("the sentinel reached the backend as %s %q", o.rec.Method, o.rec.Target)
			}
			continue
		}
		q, m := &conv.reqs[i], models[i]
		if o.reached {
			for _, e := range checkReceived(q, m, &o.rec, own) {
				fail("stream %d: %s", id, e)
			}
		}
		if !own || !o.alive {
			continue
		}
		switch {
		case m.verdict == h2WellFormed && m.method == "OPTIONS" && m.path == "*":
			// OPTIONS * asks about lb: answered by lb itself, as on every path.
			if o.reached || q.ended() && o.answer.status != 200 {
				fail("stream %d, OPTIONS *: reached the backend %v, answered %d; want lb's own 200", id, o.reached, o.answer.status)
			}
		case m.verdict == h2Refused && o.reached:
			fail("stream %d, malformed (%s), reached the backend", id, m.why)
		case m.verdict == h2Late && o.reached && !m.clDelivered:
			fail("stream %d, malformed (%s) before its declared length's DATA was complete, reached the backend", id, m.why)
		case m.verdict == h2WellFormed && !o.reached:
			fail("stream %d, well-formed, did not reach the backend", id)
		case m.verdict == h2WellFormed && q.ended() && !echoesH2(&o.answer, &o.rec):
			fail("stream %d, well-formed, did not get the backend's answer (status %d, body %q)", id, o.answer.status, o.answer.body)
		}
	}
	if own && run.hung != "" {
		fail("%s", run.hung)
	}
	return errs
}

// echoesH2 reports whether the client got the recording backend's answer to r.
func echoesH2(a *h2Answer, r *lbtest.Recorded) bool {
	if a.status != 200 {
		return false
	}
	if r.Method == http.MethodHead {
		return len(a.body) == 0
	}
	return string(a.body) == lbtest.EchoBody(r)
}

// checkReceived compares a request the backend received with the stream the client sent.
func checkReceived(q *h2Req, m h2Model, r *lbtest.Recorded, own bool) []string {
	var errs []string
	body := q.body()
	if m.verdict == h2Late && m.clDelivered {
		body = body[:m.declared]
	}
	if !own && onlyFor(m, whyCLNotDigits, whyCLDisagree) && len(r.Body) == 0 {
		body = nil // net/http took the first content-length for 0: see h2Differences
	}
	if r.Method != m.method || r.Target != originOf(m.path) || !bytes.Equal(r.Body, body) {
		errs = append(errs, fmt.Sprintf("the backend received %s %q with body %q; the client sent %s %q with body %q",
			r.Method, r.Target, quote(r.Body), m.method, m.path, quote(body)))
	}
	sent := map[string][]string{}
	var cookies []string
	authority, host := "", ""
	for _, f := range q.fields {
		switch {
		case f.Name == ":authority":
			authority = f.Value
		case f.Name == "host" && host == "":
			host = f.Value
		case f.Name == "cookie":
			cookies = append(cookies, f.Value)
		case !strings.HasPrefix(f.Name, ":"):
			k := http.CanonicalHeaderKey(f.Name)
			sent[k] = append(sent[k], strings.Trim(f.Value, " \t"))
		}
	}
	if len(cookies) > 0 {
		sent["Cookie"] = append(sent["Cookie"], strings.Trim(strings.Join(cookies, "; "), " \t"))
	}
	if authority == "" {
		authority = host
	}
	if r.Host != strings.Trim(authority, " \t") {
		errs = append(errs, fmt.Sprintf("the backend received Host %q; the client sent %q", r.Host, authority))
	}
	for name, values := range r.Header {
		switch name {
		case "X-H2-Stream":
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "Content-Length":
			if len(values) != 1 {
				errs = append(errs, fmt.Sprintf("the backend received %d %s fields, lb sets one", len(values), name))
			}
		default:
			for _, v := range values {
				if !contains(sent[name], v) {
					errs = append(errs, fmt.Sprintf("the backend received %s: %q, which the client did not send as one field", name, v))
				}
			}
		}
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
