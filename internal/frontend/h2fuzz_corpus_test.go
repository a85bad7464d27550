package frontend

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// smuggled is an HTTP/1.1 request a desynchronized backend would read out of a body or a
// field.
const smuggled = "GET /smuggled HTTP/1.1\r\nHost: lb.test\r\n\r\n"

// h2SmugglingCorpus is FuzzH2Framing's seed corpus: HTTP/2 to HTTP/1.1 downgrade smuggling
// and framing cases from the public literature (James Kettle, "HTTP/2: The Sequel is Always
// Worse", 2021: H2.CL, H2.TE, CRLF injection, request line injection, pseudo-field abuse;
// RFC 9113 8.1-8.3's malformed requests; h2spec's section 8 cases), most followed by a
// well-formed stream on which a desync would show.
var h2SmugglingCorpus = []struct {
	name string
	conv h2Conv
}{
	// H2.CL: a content-length that disagrees with the DATA, both ways.
	{"h2.cl zero with a smuggled request", seq(post("/", smuggled, "content-length", "0"), get("/after"))},
	{"h2.cl short, one frame", seq(post("/", "abc"+smuggled, "content-length", "3"), get("/after"))},
	{"h2.cl short, excess in a later frame", seq(frames(post("/", "", "content-length", "3"), "abc", smuggled), get("/after"))},
	{"h2.cl long", seq(post("/", "hello", "content-length", "100"), get("/after"))},
	{"h2.cl long, split", seq(frames(post("/", "", "content-length", "10"), "he", "llo"), get("/after"))},
	{"cl on a stream the headers end", seq(get("/", "content-length", "5"), get("/after"))},
	{"cl twice on a stream the headers end", seq(get("/", "content-length", "1", "content-length", ""), get("/after"))},
	{"cl valid then empty", seq(frames(req("PUT", "/", "content-length", "1", "content-length", ""), "", "0", ""), get("/after"))},
	{"cl twice same", seq(post("/", "hello", "content-length", "5", "content-length", "5"), get("/after"))},
	{"cl twice differing", seq(post("/", "hello", "content-length", "5", "content-length", "6"), get("/after"))},
	{"cl list", seq(post("/", "hello", "content-length", "5, 5"), get("/after"))},
	{"cl plus sign", seq(post("/", "hello", "content-length", "+5"), get("/after"))},
	{"cl trailing space", seq(post("/", "hello", "content-length", "5 "), get("/after"))},
	{"cl negative", seq(post("/", smuggled, "content-length", "-1"), get("/after"))},
	{"cl hex", seq(post("/", "hello", "content-length", "0x5"), get("/after"))},
	{"cl matches", seq(post("/", "hello", "content-length", "5"), get("/after"))},

	// H2.TE: transfer-encoding in HTTP/2 with a chunked-looking body.
	{"h2.te chunked", seq(post("/", "0\r\n\r\n"+smuggled, "transfer-encoding", "chunked"), get("/after"))},
	{"h2.te chunked with cl", seq(post("/", "0\r\n\r\n"+smuggled, "transfer-encoding", "chunked", "content-length", "45"), get("/after"))},
	{"h2.te identity", seq(post("/", "hello", "transfer-encoding", "identity"), get("/after"))},
	{"te gzip", seq(get("/", "te", "gzip"), get("/after"))},
	{"te trailers", seq(get("/", "te", "trailers"), get("/after"))},
	{"te empty", seq(get("/", "te", ""), get("/after"))},
	{"te trailers twice", seq(get("/", "te", "trailers", "te", "trailers"), get("/after"))},
	{"te trailers and more", seq(get("/", "te", "trailers, deflate"), get("/after"))},

	// CRLF injection in values and names (H2.X).
	{"crlf in a value", seq(get("/", "foo", "bar\r\ntransfer-encoding: chunked"), get("/after"))},
	{"crlf in a value with a request", seq(get("/", "foo", "bar\r\n\r\n"+smuggled), get("/after"))},
	{"lf in a value", seq(get("/", "foo", "bar\nhost: evil.test"), get("/after"))},
	{"cr in a value", seq(get("/", "foo", "bar\rhost: evil.test"), get("/after"))},
	{"nul in a value", seq(get("/", "foo", "a\x00b"), get("/after"))},
	{"crlf in a name", seq(post("/", "0\r\n\r\n", "foo: bar\r\ntransfer-encoding", "chunked"), get("/after"))},
	{"colon in a name", seq(get("/", "transfer-encoding:chunked", "x"), get("/after"))},
	{"space in a name", seq(post("/", "0\r\n\r\n", "transfer-encoding ", "chunked"), get("/after"))},
	{"upper case name", seq(get("/", "X-Upper", "x"), get("/after"))},
	{"empty name", seq(get("/", "", "x"), get("/after"))},
	{"leading space in a value", seq(get("/", "foo", " bar "), get("/after"))},

	// Request line injection through pseudo-fields.
	{":method with a request line", seq(req("GET / HTTP/1.1\r\nX: y", "/"), get("/after"))},
	{":method with a space", seq(req("GET /smuggled HTTP/1.1\r\nHost: lb.test\r\n\r\nGET", "/"), get("/after"))},
	{":method with a target", seq(req("GET /smuggled", "/"), get("/after"))},
	{":path with a request", seq(get("/ HTTP/1.1\r\nHost: lb.test\r\n\r\nGET /smuggled"), get("/after"))},
	{":path with a space", seq(get("/a b"), get("/after"))},
	{":path with crlf", seq(get("/\r\nx: y"), get("/after"))},
	{":path without a slash", seq(get("smuggled"), get("/after"))},
	{":path absolute", seq(get("https://lb.test/abs"), get("/after"))},
	{":path empty", seq(get(""), get("/after"))},
	{":path asterisk with OPTIONS", seq(req("OPTIONS", "*"), get("/after"))},
	{":path asterisk with GET", seq(get("*"), get("/after"))},
	{":authority with crlf", seq(authority(get("/"), "lb.test\r\nx: y"), get("/after"))},
	{":authority with a space", seq(authority(get("/"), "lb.test /smuggled"), get("/after"))},
	{":authority with a path", seq(authority(get("/"), "lb.test/x?y"), get("/after"))},
	{":scheme other than http", seq(frames(h2Req{fields: fl(":method", "POST", ":scheme", "ftp", ":authority", "lb.test", ":path", "/")}, "", "0", "", "0"), get("/after"))},
	{"lower case method", seq(req("get", "/"), get("/after"))},

	// Pseudo-fields out of place.
	{"missing :method", seq(drop(get("/"), ":method"), get("/after"))},
	{"missing :scheme", seq(drop(get("/"), ":scheme"), get("/after"))},
	{"missing :path", seq(drop(get("/"), ":path"), get("/after"))},
	{"pseudo after a field", seq(h2Req{fields: fl(":method", "GET", ":scheme", "https", "x", "y", ":path", "/", ":authority", "lb.test")}, get("/after"))},
	{"duplicate :path", seq(get("/a", ":path", "/b"), get("/after"))},
	{"duplicate :method", seq(h2Req{fields: fl(":method", "GET", ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "lb.test")}, get("/after"))},
	{"unknown pseudo-field", seq(h2Req{fields: fl(":method", "GET", ":scheme", "https", ":path", "/", ":authority", "lb.test", ":protocol", "websocket")}, get("/after"))},
	{":status in a request", seq(h2Req{fields: fl(":status", "200", ":method", "GET", ":scheme", "https", ":path", "/", ":authority", "lb.test")}, get("/after"))},
	{"empty pseudo-field name, then reset", seq(ending(h2Req{fields: fl(":", "")}, endReset), get("/after"))},
	{"connect", seq(h2Req{fields: fl(":method", "CONNECT", ":authority", "lb.test:443")}, get("/after"))},

	// Connection-specific fields (RFC 9113 8.2.2).
	{"connection", seq(get("/", "connection", "keep-alive"), get("/after"))},
	{"keep-alive", seq(get("/", "keep-alive", "timeout=5"), get("/after"))},
	{"proxy-connection", seq(get("/", "proxy-connection", "keep-alive"), get("/after"))},
	{"upgrade", seq(get("/", "upgrade", "websocket"), get("/after"))},

	// Host and :authority.
	{"host disagrees with :authority", seq(get("/", "host", "evil.test"), get("/after"))},
	{"host without :authority", seq(drop(get("/", "host", "lb.test"), ":authority"), get("/after"))},
	{"two hosts without :authority", seq(drop(get("/", "host", "lb.test", "host", "evil.test"), ":authority"), get("/after"))},
	{"no :authority and no host", seq(drop(get("/"), ":authority"), get("/after"))},

	// Trailers.
	{"trailers", seq(trailers(post("/", "abc"), false, "x-sum", "3"), get("/after"))},
	{"trailers with a pseudo-field", seq(trailers(post("/", "abc"), false, ":path", "/smuggled"), get("/after"))},
	{"trailers without END_STREAM", seq(trailers(post("/", "abc"), true, "x-sum", "3"), get("/after"))},
	{"trailers with transfer-encoding", seq(trailers(post("/", "abc"), false, "transfer-encoding", "chunked"), get("/after"))},
	{"trailers after a malformed head", seq(trailers(ending(drop(get("/", "content-length", "0"), ":method"), endOnLast), false), get("/after"))},
	{"trailers after a head without pseudo-fields", seq(trailers(h2Req{}, false), get("/after"))},
	{"trailers after a head the framer refuses", seq(trailers(get("/", "X-Upper", "x"), false, "x-sum", "3"), get("/after"))},
	{"trailers and a reset after a head the framer refuses", seq(ending(trailers(get("/", "", ""), false), endReset), get("/after"))},
	{"a request in the trailers after a head the framer refuses", seq(trailers(get("/", "X-Upper", "x"), false,
		":method", "GET", ":scheme", "https", ":authority", "lb.test", ":path", "/from-trailers"), get("/after"))},
	{"trailers split after a head without :method", seq(split(trailers(h2Req{fields: fl("x", "")}, false), 6), get("/after"))},
	{"trailers after a :path lb answers 400", seq(ending(trailers(frames(get("0"), "a", "b"), false), endEmptyData), get("/after"))},
	{"trailers with crlf", seq(trailers(post("/", "abc"), false, "x", "a\r\n\r\n"+smuggled), get("/after"))},

	// How a stream ends.
	{"rst mid-body", seq(ending(post("/", "abc"), endReset), get("/after"))},
	{"rst mid-body with cl", seq(ending(post("/", "abc", "content-length", "6"), endReset), get("/after"))},
	{"rst after the declared body", seq(ending(post("/", "abc", "content-length", "3"), endReset), get("/after"))},
	{"never ended", seq(ending(post("/", "abc"), endNever), get("/after"))},
	{"never ended with cl", seq(ending(post("/", "abc", "content-length", "3"), endNever), get("/after"))},
	{"end on an empty data frame", seq(ending(post("/", "abc"), endEmptyData), get("/after"))},

	// Padding and CONTINUATION.
	{"padded data", seq(padded(post("/", "hello"), 10), get("/after"))},
	{"padded data with cl", seq(padded(post("/", "hello", "content-length", "5"), 200), get("/after"))},
	{"padding only", seq(padded(frames(post("/", ""), ""), 1), get("/after"))},
	{"continuation every byte", seq(split(get("/", "foo", "bar"), 1), get("/after"))},
	{"continuation with an upper case name after a reset", seq(drop(get("/"), ":method"), split(get("/", "X-Upper", "x"), 6), get("/after"))},
	{"continuation with crlf in a value", seq(split(get("/", "foo", "bar\r\nx: y"), 3), get("/after"))},

	// Cookies, bodies, forwarding fields, several streams.
	{"cookie split", seq(get("/", "cookie", "a=1", "cookie", "b=2"), get("/after"))},
	{"cookie with crlf", seq(get("/", "cookie", "a=1\r\nx: y"), get("/after"))},
	{"spoofed forwarding fields", seq(get("/", "x-forwarded-for", "6.6.6.6", "x-forwarded-host", "evil.test", "forwarded", "for=6.6.6.6", "x-real-ip", "6.6.6.6"), get("/after"))},
	{"expect 100-continue", seq(post("/", "hello", "expect", "100-continue"), get("/after"))},
	{"head with a body", seq(req("HEAD", "/", "content-length", "3"), get("/after"))},
	{"large body", seq(frames(post("/", ""), strings.Repeat("a", 8000), strings.Repeat("b", 8000), "c"), get("/after"))},
	{"three streams", seq(get("/1"), post("/2", "two"), get("/3?q=1"))},
	{"non-ascii path", seq(get("/caf\xc3\xa9"), get("/after"))},
	{"fragment in :path", seq(get("/a#b"), get("/after"))},
}

func TestH2SmugglingCorpusSize(t *testing.T) {
	if len(h2SmugglingCorpus) < 100 {
		t.Fatalf("the seed corpus has %d conversations, want at least 100", len(h2SmugglingCorpus))
	}
	seen := map[string]bool{}
	for _, s := range h2SmugglingCorpus {
		if seen[s.name] {
			t.Errorf("two seeds named %q", s.name)
		}
		seen[s.name] = true
		// Each seed must survive the fuzz input's encoding as it was written.
		in := s.conv.encode()
		if got := decodeH2Conv(in); !reflect.DeepEqual(got, s.conv) || !bytes.Equal(got.encode(), in) {
			t.Errorf("seed %q does not survive encoding: %+v", s.name, got)
		}
	}
}

func seq(reqs ...h2Req) h2Conv { return h2Conv{reqs: reqs} }

func fl(kv ...string) []hpack.HeaderField {
	var fs []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return fs
}

// req is a request with the usual pseudo-fields, then fields (name, value pairs).
func req(method, path string, fields ...string) h2Req {
	return h2Req{fields: fl(append([]string{":method", method, ":scheme", "https", ":authority", "lb.test", ":path", path}, fields...)...)}
}

func get(path string, fields ...string) h2Req { return req("GET", path, fields...) }

// post is a POST with body in one DATA frame (none for "").
func post(path, body string, fields ...string) h2Req {
	q := req("POST", path, fields...)
	if body != "" {
		q.data = [][]byte{[]byte(body)}
	}
	return q
}

func frames(q h2Req, data ...string) h2Req {
	for _, d := range data {
		q.data = append(q.data, []byte(d))
	}
	return q
}

func drop(q h2Req, name string) h2Req {
	var fs []hpack.HeaderField
	for _, f := range q.fields {
		if f.Name != name {
			fs = append(fs, f)
		}
	}
	q.fields = fs
	return q
}

func authority(q h2Req, v string) h2Req {
	for i := range q.fields {
		if q.fields[i].Name == ":authority" {
			q.fields[i].Value = v
		}
	}
	return q
}

func trailers(q h2Req, open bool, fields ...string) h2Req {
	q.hasTrailers, q.trailersOpen, q.trailers = true, open, fl(fields...)
	return q
}

func ending(q h2Req, e h2End) h2Req { q.end = e; return q }

func padded(q h2Req, pad uint8) h2Req { q.pad = pad; return q }

func split(q h2Req, n uint8) h2Req { q.split = n; return q }
