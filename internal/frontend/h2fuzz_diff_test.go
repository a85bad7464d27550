package frontend

import (
	"fmt"
	"strings"

	"outrigger/internal/lbtest"
)

// h2Difference is a documented way in which lb's own HTTP/2 server and net/http's may
// disagree: on whether a stream reaches the backend (stream), or on whether the connection
// survives a stream (conn).
type h2Difference struct {
	name, why string
	stream    func(q *h2Req, m h2Model, lbReached bool) bool
	conn      func(q *h2Req, m h2Model, lbAlive bool) bool
}

// h2Differences is the whole list; keep it short.
var h2Differences = []h2Difference{
	{
		name: "absolute-form :path",
		why: "RFC 9113 8.3.1 wants :path in origin-form (or *); net/http's server parses it with " +
			"url.ParseRequestURI, which takes an absolute URI, and forwards its path: lb refuses it (400)",
		stream: func(q *h2Req, m h2Model, lbReached bool) bool { return !lbReached && onlyFor(m, whyAbsolutePath) },
	},
	{
		name: "content-length on a stream the HEADERS ended",
		why: "RFC 9113 8.1.1: a content-length other than the DATA's length (none) is malformed; " +
			"net/http's server ignores every content-length field when no body can follow (valid or " +
			"not, one or several): lb resets the stream",
		stream: func(q *h2Req, m h2Model, lbReached bool) bool {
			headersEnded := q.ended() && len(q.data) == 0 && !q.hasTrailers && q.end == endOnLast
			return !lbReached && headersEnded && onlyFor(m, whyCLWithoutData, whyCLNotDigits, whyCLDisagree)
		},
	},
	{
		name: "content-lengths that are not digits or disagree",
		why: "RFC 9113 8.1.1 and RFC 9110 8.6: malformed (\"5, 5\", \"+5\", \"5 \", \"0x5\", 5 and 6). " +
			"net/http's server reads the first content-length field only and takes one that is not " +
			"digits for a length of 0, so nethttp.go answers such a request 400 itself (it reached the " +
			"backend without its body before: found by this test); lb's own server resets the stream. " +
			"Either way nothing reaches the backend; only the answer differs (400 or RST_STREAM)",
		stream: func(q *h2Req, m h2Model, lbReached bool) bool {
			return !lbReached && onlyFor(m, whyCLNotDigits, whyCLDisagree)
		},
	},
	{
		name: "a frame after a header block the framer refused",
		why: "x/net's Framer refuses a header block with an invalid field or pseudo-field as a " +
			"stream error; net/http's server then forgets that the HEADERS opened the stream. A DATA " +
			"or RST_STREAM frame on it is then one on an idle stream, a connection error (GOAWAY), " +
			"where lb resets the stream (STREAM_CLOSED, RFC 9113 5.1); and a trailer section on it " +
			"is taken for a new stream's head, so that net/http forwards it as a request if it has " +
			"the pseudo-fields (trailersBecameRequest)",
		conn: func(q *h2Req, m h2Model, lbAlive bool) bool {
			// What the client sends after the head: DATA, then trailers, then RST_STREAM.
			data := len(q.data) > 0 || q.end == endEmptyData
			return lbAlive && m.framerFails && (data || !q.hasTrailers && q.end == endReset)
		},
	},
	{
		name: "trailers on a stream the server reset as malformed",
		why: "RFC 9113 5.1 wants frames on a stream the server reset discarded for a while: lb " +
			"does so, and the connection goes on (it ended the connection before: found by this " +
			"test). net/http's server ignores them while its RST_STREAM is still queued, ends the " +
			"connection once it went out, and takes them for a new stream's head after a head the " +
			"Framer refused: its outcome depends on timing. And each server answers some malformed " +
			"heads 400 rather than resetting the stream (lb a :path or host it refuses), whose " +
			"trailers then just end it",
		conn: func(q *h2Req, m h2Model, lbAlive bool) bool {
			return m.verdict == h2Refused && q.hasTrailers
		},
	},
	{
		name: "te: empty, or repeated",
		why: "RFC 9113 8.2.2 lets te be present with no value other than trailers: net/http's " +
			"server takes an empty te but refuses two te fields; lb refuses the empty one and " +
			"takes \"te: trailers\" twice. te is hop-by-hop: neither reaches the backend",
		stream: func(q *h2Req, m h2Model, lbReached bool) bool {
			tes := 0
			for _, f := range q.fields {
				if f.Name == "te" {
					tes++
				}
			}
			return !lbReached && onlyFor(m, whyTEEmpty) || lbReached && tes > 1
		},
	},
	{
		name: ":scheme other than http or https",
		why: "RFC 9113 8.3.1 does not restrict :scheme (a gateway may translate other schemes); " +
			"net/http's server refuses all but http and https, lb's takes any (the backend learns " +
			"the client's scheme from X-Forwarded-Proto, which lb sets from the connection)",
		stream: func(q *h2Req, m h2Model, lbReached bool) bool {
			return lbReached && m.scheme != "http" && m.scheme != "https"
		},
	},
}

// onlyFor reports whether the stream's head is malformed for these reasons only.
func onlyFor(m h2Model, whys ...string) bool {
	for _, r := range m.refusedFor {
		if !contains(whys, r) {
			return false
		}
	}
	return len(m.refusedFor) > 0
}

// differ compares, stream by stream, whether the request reached the backend on each server.
func differ(conv *h2Conv, models []h2Model, runs [2]*h2Run) []string {
	var errs []string
	for i := range runs[0].streams {
		lb, nh := runs[0].streams[i], runs[1].streams[i]
		if !lb.alive || !nh.alive || lb.reached == nh.reached {
			continue
		}
		if i == len(conv.reqs) {
			errs = append(errs, fmt.Sprintf("the sentinel reached the backend through %s only", map[bool]string{true: "lb", false: "net/http"}[lb.reached]))
			continue
		}
		q, m := &conv.reqs[i], models[i]
		if m.verdict == h2Late && m.clDelivered {
			continue // whether the forwarding loop sent the declared length before the malformation came is a race
		}
		documented := false
		for _, d := range h2Differences {
			documented = documented || d.stream != nil && d.stream(q, m, lb.reached)
		}
		if !documented {
			errs = append(errs, fmt.Sprintf("stream %d (%s: %s) reached the backend through %s only", 2*i+1,
				h2VerdictNames[m.verdict], m.why, map[bool]string{true: "lb's own server", false: "net/http's"}[lb.reached]))
		}
	}
	// The first stream one server could take and the other not: the one before ended the
	// connection on that other.
	for i := 1; i < len(runs[0].streams); i++ {
		lb, nh := runs[0].streams[i], runs[1].streams[i]
		if lb.alive == nh.alive {
			continue
		}
		q, m := &conv.reqs[i-1], models[i-1]
		documented := false
		for _, d := range h2Differences {
			documented = documented || d.conn != nil && d.conn(q, m, lb.alive)
		}
		if !documented {
			errs = append(errs, fmt.Sprintf("after stream %d (%s: %s) the connection took more streams on %s only", 2*i-1,
				h2VerdictNames[m.verdict], m.why, map[bool]string{true: "lb's own server", false: "net/http's"}[lb.alive]))
		}
		break
	}
	return errs
}

// describeH2 renders the conversation and what each server made of it.
func describeH2(conv *h2Conv, models []h2Model, runs [2]*h2Run) string {
	var b strings.Builder
	for i := 0; i <= len(conv.reqs); i++ {
		if i < len(conv.reqs) {
			q, m := &conv.reqs[i], models[i]
			fmt.Fprintf(&b, "stream %d: %s (%s)\n  head %q\n  data %d frames, %d bytes, end %d, pad %d, split %d, trailers %v %q (open %v)\n",
				2*i+1, h2VerdictNames[m.verdict], m.why, q.fields, len(q.data), len(q.body()), q.end, q.pad, q.split,
				q.hasTrailers, q.trailers, q.trailersOpen)
		} else {
			fmt.Fprintf(&b, "sentinel stream %d\n", 2*i+1)
		}
		for _, run := range runs {
			o := run.streams[i]
			fmt.Fprintf(&b, "  %s: alive %v, status %d, rst %v %v, reached %v", run.front, o.alive, o.answer.status, o.answer.rstSeen, o.answer.rst, o.reached)
			if o.reached {
				fmt.Fprintf(&b, " as %s %q body %q", o.rec.Method, o.rec.Target, quote(o.rec.Body))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// trailersBecameRequest reports whether r is a request net/http's server made of a trailer
// section sent on a stream whose head x/net's Framer refused (see h2Differences).
func trailersBecameRequest(conv *h2Conv, models []h2Model, r *lbtest.Recorded) bool {
	for i, q := range conv.reqs {
		if !models[i].framerFails || !q.hasTrailers {
			continue
		}
		for _, f := range q.trailers {
			if f.Name == ":path" && originOf(f.Value) == r.Target {
				return true
			}
		}
	}
	return false
}
