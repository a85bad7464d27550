package h1

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// wantField is a field a test expects; its Line is checked by checkLines.
type wantField struct {
	name, value string
	kind        Kind
}

// wantRequest is what a test expects ParseRequest to return; query "<nil>" means no '?'.
type wantRequest struct {
	method, target, path, query, host string
	origin                            string // "" : the target
	minor                             int    // 0: HTTP/1.1 (1); use http10 for HTTP/1.0
	http10                            bool
	contentLength                     int64
	hasContentLength, close, chunked  bool
	upgrade                           string
	expectContinue, connectionNames   bool
	fields                            []wantField
	headLen                           int // 0: the whole head
}

const noQuery = "<nil>"

const browserHead = "GET /static/app.js?v=3&lang=en HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=MTcwMDAwMDAwMHxEdi1CQkFFQ180SUFBUkFCRUFBQUl2LUNBQUVHYzNSeWFXNW5EQWNBQlhWelpYSnBaQU5wYm5RRUFnQUM=; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

// acceptedTests are heads ParseRequest takes, with what it must make of them.
var acceptedTests = []struct {
	name string
	head string
	want wantRequest
}{
	{
		name: "minimal",
		head: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "example.com",
			fields: []wantField{{"Host", "example.com", KindHost}}},
	},
	{
		name: "browser",
		head: browserHead,
		want: wantRequest{method: "GET", target: "/static/app.js?v=3&lang=en", path: "/static/app.js",
			query: "v=3&lang=en", host: "www.example.com",
			fields: []wantField{
				{"Host", "www.example.com", KindHost},
				{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", KindOther},
				{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", KindOther},
				{"Accept-Language", "en-US,en;q=0.5", KindOther},
				{"Accept-Encoding", "gzip, deflate, br, zstd", KindOther},
				{"Referer", "https://www.example.com/", KindOther},
				{"Cookie", "session=MTcwMDAwMDAwMHxEdi1CQkFFQ180SUFBUkFCRUFBQUl2LUNBQUVHYzNSeWFXNW5EQWNBQlhWelpYSnBaQU5wYm5RRUFnQUM=; theme=dark", KindOther},
				{"Connection", "keep-alive", KindConnection},
			}},
	},
	{
		name: "post with body after the head",
		head: "POST /login HTTP/1.1\r\nhost: a.test:8443\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nuser=ab",
		want: wantRequest{method: "POST", target: "/login", path: "/login", query: noQuery, host: "a.test:8443",
			contentLength: 7, hasContentLength: true,
			fields: []wantField{
				{"host", "a.test:8443", KindHost},
				{"Content-Type", "application/x-www-form-urlencoded", KindContentType},
				{"Content-Length", "7", KindContentLength},
			},
			headLen: len("POST /login HTTP/1.1\r\nhost: a.test:8443\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\n")},
	},
	{
		name: "pipelined request after the head",
		head: "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET", target: "/a", path: "/a", query: noQuery, host: "h",
			fields: []wantField{{"Host", "h", KindHost}}, headLen: len("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")},
	},
	{
		name: "path and query characters and escapes",
		head: "GET /a/b;c=d/@:!$&'()*+,=~-._[x]/%2F%2f%00%C3%A9//x?q=a%20b&x=%2B+/?:@!$'()*,[]~ HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET",
			target: "/a/b;c=d/@:!$&'()*+,=~-._[x]/%2F%2f%00%C3%A9//x?q=a%20b&x=%2B+/?:@!$'()*,[]~",
			path:   "/a/b;c=d/@:!$&'()*+,=~-._[x]/%2F%2f%00%C3%A9//x", query: "q=a%20b&x=%2B+/?:@!$'()*,[]~", host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "empty query",
		head: "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET", target: "/a?", path: "/a", query: "", host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "query of question marks",
		head: "GET /?? HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET", target: "/??", path: "/", query: "?", host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "double slash path",
		head: "GET //evil.example/x HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET", target: "//evil.example/x", path: "//evil.example/x", query: noQuery, host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "token method in lower case",
		head: "m-search.x_y~! / HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "m-search.x_y~!", target: "/", path: "/", query: noQuery, host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "connection lists",
		head: "GET / HTTP/1.1\r\nConnection: ,, Keep-Alive ,\t\r\nHost: h\r\nconnection: CLOSE\r\nConnection:\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "h", close: true,
			fields: []wantField{
				{"Connection", ",, Keep-Alive ,", KindConnection},
				{"Host", "h", KindHost},
				{"connection", "CLOSE", KindConnection},
				{"Connection", "", KindConnection},
			}},
	},
	{
		name: "connection keep-alive and close in one value",
		head: "DELETE /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n",
		want: wantRequest{method: "DELETE", target: "/x", path: "/x", query: noQuery, host: "h", close: true,
			fields: []wantField{{"Host", "h", KindHost}, {"Connection", "keep-alive, close", KindConnection}}},
	},
	{
		name: "values with whitespace, tabs, UTF-8 and obs-text",
		head: "GET / HTTP/1.1\r\nHost:h\r\nX-A:\t a \t b \t\r\nX-Empty:\r\nX-Blank: \t \r\nX-Utf8: héllo wörld ✓\r\nX-Obs: \x80\xff\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "h",
			fields: []wantField{
				{"Host", "h", KindHost},
				{"X-A", "a \t b", KindOther},
				{"X-Empty", "", KindOther},
				{"X-Blank", "", KindOther},
				{"X-Utf8", "héllo wörld ✓", KindOther},
				{"X-Obs", "\x80\xff", KindOther},
			}},
	},
	{
		name: "content-length zero with leading zeros and 18 digits",
		head: "PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 000000000000000000\r\n\r\n",
		want: wantRequest{method: "PUT", target: "/f", path: "/f", query: noQuery, host: "h", hasContentLength: true,
			fields: []wantField{{"Host", "h", KindHost}, {"Content-Length", "000000000000000000", KindContentLength}}},
	},
	{
		name: "largest content-length",
		head: "PUT /f HTTP/1.1\r\nHost: h\r\ncontent-length:  999999999999999999 \r\n\r\n",
		want: wantRequest{method: "PUT", target: "/f", path: "/f", query: noQuery, host: "h",
			contentLength: 999999999999999999, hasContentLength: true,
			fields: []wantField{{"Host", "h", KindHost}, {"content-length", "999999999999999999", KindContentLength}}},
	},
	{
		name: "ipv6 host and classified fields kept",
		head: "GET / HTTP/1.1\r\nHOST: [::1]:8443\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-host: e\r\nX-Forwarded-Proto: http\r\n" +
			"Forwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\nX-Client-IP: 1.2.3.4\r\nTrue-Client-IP: 1.2.3.4\r\nX-Request-ID: abc\r\n" +
			"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nProxy-Authenticate: x\r\n" +
			"X_Forwarded_For: 5.6.7.8\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nStrict-Transport-Security: max-age=1\r\nPragma: no-cache\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "[::1]:8443",
			fields: []wantField{
				{"HOST", "[::1]:8443", KindHost},
				{"X-Forwarded-For", "1.2.3.4", KindXForwardedFor},
				{"x-forwarded-host", "e", KindXForwardedHost},
				{"X-Forwarded-Proto", "http", KindXForwardedProto},
				{"Forwarded", "for=1.2.3.4", KindForwarded},
				{"X-Real-IP", "1.2.3.4", KindXRealIP},
				{"X-Client-IP", "1.2.3.4", KindXClientIP},
				{"True-Client-IP", "1.2.3.4", KindTrueClientIP},
				{"X-Request-ID", "abc", KindXRequestID},
				{"Keep-Alive", "timeout=5", KindKeepAlive},
				{"Proxy-Connection", "keep-alive", KindProxyConnection},
				{"Proxy-Authorization", "Basic eA==", KindProxyAuthorization},
				{"Proxy-Authenticate", "x", KindProxyAuthenticate},
				{"X_Forwarded_For", "5.6.7.8", KindOther},
				{"Date", "Mon, 02 Jan 2006 15:04:05 GMT", KindDate},
				{"Strict-Transport-Security", "max-age=1", KindStrictTransportSecurity},
				{"Pragma", "no-cache", KindOther},
			}},
	},
	{
		name: "http/1.0 without host, closing",
		head: "GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n",
		want: wantRequest{method: "GET", target: "/old", path: "/old", query: noQuery, http10: true, close: true,
			fields: []wantField{{"User-Agent", "x", KindOther}}},
	},
	{
		name: "http/1.0 keep-alive with a body",
		head: "POST /old HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nab",
		want: wantRequest{method: "POST", target: "/old", path: "/old", query: noQuery, host: "h", http10: true,
			contentLength: 2, hasContentLength: true,
			fields:  []wantField{{"Host", "h", KindHost}, {"Connection", "Keep-Alive", KindConnection}, {"Content-Length", "2", KindContentLength}},
			headLen: len("POST /old HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n")},
	},
	{
		name: "http/1.0 ignores upgrade and expect",
		head: "POST / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
		want: wantRequest{method: "POST", target: "/", path: "/", query: noQuery, http10: true, close: true, hasContentLength: true,
			fields: []wantField{{"Connection", "upgrade", KindConnection}, {"Upgrade", "websocket", KindUpgrade},
				{"Expect", "100-continue", KindExpect}, {"Content-Length", "0", KindContentLength}}},
	},
	{
		name: "chunked",
		head: "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n",
		want: wantRequest{method: "POST", target: "/up", path: "/up", query: noQuery, host: "h", chunked: true,
			fields: []wantField{{"Host", "h", KindHost}, {"Transfer-Encoding", "Chunked", KindTransferEncoding}}},
	},
	{
		name: "same content-length twice",
		head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
		want: wantRequest{method: "POST", target: "/", path: "/", query: noQuery, host: "h", contentLength: 3, hasContentLength: true,
			fields: []wantField{{"Host", "h", KindHost}, {"Content-Length", "3", KindContentLength}, {"content-length", "3", KindContentLength}}},
	},
	{
		name: "websocket upgrade",
		head: "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
		want: wantRequest{method: "GET", target: "/ws", path: "/ws", query: noQuery, host: "h", upgrade: "websocket",
			fields: []wantField{{"Host", "h", KindHost}, {"Connection", "keep-alive, Upgrade", KindConnection},
				{"Upgrade", "websocket", KindUpgrade}, {"Sec-WebSocket-Version", "13", KindOther}}},
	},
	{
		name: "upgrade field without the connection token",
		head: "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "h",
			fields: []wantField{{"Host", "h", KindHost}, {"Upgrade", "h2c", KindUpgrade}}},
	},
	{
		name: "expect 100-continue, te, trailer and a connection-named field",
		head: "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\nTE: trailers\r\nTrailer: X-Sum\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n",
		want: wantRequest{method: "PUT", target: "/f", path: "/f", query: noQuery, host: "h", contentLength: 5, hasContentLength: true,
			expectContinue: true, connectionNames: true,
			fields: []wantField{{"Host", "h", KindHost}, {"Expect", "100-Continue", KindExpect}, {"Content-Length", "5", KindContentLength},
				{"TE", "trailers", KindTE}, {"Trailer", "X-Sum", KindTrailer}, {"Connection", "X-Hop", KindConnection}, {"X-Hop", "1", KindOther}}},
	},
	{
		name: "expect 100-continue without a body",
		head: "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "h",
			fields: []wantField{{"Host", "h", KindHost}, {"Expect", "100-continue", KindExpect}}},
	},
	{
		name: "absolute-form",
		head: "GET HTTP://Example.COM:80/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n",
		want: wantRequest{method: "GET", target: "HTTP://Example.COM:80/a/b?c", origin: "/a/b?c", path: "/a/b", query: "c",
			host: "Example.COM:80", fields: []wantField{{"Host", "other", KindHost}}},
	},
	{
		name: "absolute-form without a path",
		head: "GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET", target: "https://h?q", origin: "?q", path: "", query: "q", host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "asterisk-form",
		head: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "OPTIONS", target: "*", path: "*", query: noQuery, host: "h",
			fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "target bytes net/http takes",
		head: "GET /a\"b<c>{d}|e^f`g\\h?i;j=k&l=\"m\" HTTP/1.1\r\nHost: h\r\n\r\n",
		want: wantRequest{method: "GET", target: "/a\"b<c>{d}|e^f`g\\h?i;j=k&l=\"m\"", path: "/a\"b<c>{d}|e^f`g\\h",
			query: "i;j=k&l=\"m\"", host: "h", fields: []wantField{{"Host", "h", KindHost}}},
	},
	{
		name: "host with sub-delims",
		head: "GET / HTTP/1.1\r\nHost: a-b_c~d.e!$&'()*+,;=:80\r\n\r\n",
		want: wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "a-b_c~d.e!$&'()*+,;=:80",
			fields: []wantField{{"Host", "a-b_c~d.e!$&'()*+,;=:80", KindHost}}},
	},
}

func TestParseRequest(t *testing.T) {
	for _, tc := range acceptedTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head), &r); err != nil {
				t.Fatalf("ParseRequest(%q): %v", tc.head, err)
			}
			checkRequest(t, tc.head, &r, tc.want)
		})
	}
}

// checkRequest compares r, parsed from head, with want.
func checkRequest(t *testing.T, head string, r *Request, want wantRequest) {
	t.Helper()
	strs := []struct {
		what      string
		got, want string
	}{
		{"Method", string(r.Method), want.method},
		{"Target", string(r.Target), want.target},
		{"Path", string(r.Path), want.path},
		{"Host", string(r.Host), want.host},
	}
	for _, s := range strs {
		if s.got != s.want {
			t.Errorf("%s: got %q, want %q", s.what, s.got, s.want)
		}
	}
	switch {
	case want.query == noQuery && r.Query != nil:
		t.Errorf("Query: got %q, want nil", r.Query)
	case want.query != noQuery && (r.Query == nil || string(r.Query) != want.query):
		t.Errorf("Query: got %q (nil %t), want %q", r.Query, r.Query == nil, want.query)
	}
	if r.ContentLength != want.contentLength || r.HasContentLength != want.hasContentLength {
		t.Errorf("ContentLength, HasContentLength: got %d, %t, want %d, %t",
			r.ContentLength, r.HasContentLength, want.contentLength, want.hasContentLength)
	}
	origin := want.origin
	if origin == "" {
		origin = want.target
	}
	minor := 1
	if want.http10 {
		minor = 0
	}
	bools := []struct {
		what      string
		got, want any
	}{
		{"Close", r.Close, want.close},
		{"Chunked", r.Chunked, want.chunked},
		{"Upgrade", string(r.Upgrade), want.upgrade},
		{"ExpectContinue", r.ExpectContinue, want.expectContinue},
		{"ConnectionNames", r.ConnectionNames, want.connectionNames},
		{"Origin", string(r.Origin), origin},
		{"Minor", r.Minor, minor},
	}
	for _, b := range bools {
		if b.got != b.want {
			t.Errorf("%s: got %v, want %v", b.what, b.got, b.want)
		}
	}
	headLen := want.headLen
	if headLen == 0 {
		headLen = len(head)
	}
	if r.HeadLen != headLen {
		t.Errorf("HeadLen: got %d, want %d", r.HeadLen, headLen)
	}
	if len(r.Fields) != len(want.fields) {
		t.Fatalf("got %d fields, want %d: %q", len(r.Fields), len(want.fields), r.Fields)
	}
	for i, f := range r.Fields {
		w := want.fields[i]
		if string(f.Name) != w.name || string(f.Value) != w.value || f.Kind != w.kind {
			t.Errorf("field %d: got %q: %q (%v), want %q: %q (%v)", i, f.Name, f.Value, f.Kind, w.name, w.value, w.kind)
		}
	}
	checkLines(t, head, r)
}

// checkLines checks that the request line and the Fields' Lines make up head's head, and
// that each Line is its Name, a colon, and a value that trims to Value.
func checkLines(t *testing.T, head string, r *Request) {
	t.Helper()
	var b strings.Builder
	b.WriteString(string(r.Method) + " " + string(r.Target) + " HTTP/1." + strconv.Itoa(r.Minor) + "\r\n")
	for i, f := range r.Fields {
		line := string(f.Line)
		rest, ok := strings.CutPrefix(line, string(f.Name)+":")
		rest, ok2 := strings.CutSuffix(rest, "\r\n")
		if !ok || !ok2 || strings.Trim(rest, " \t") != string(f.Value) {
			t.Errorf("field %d: Line %q does not match Name %q and Value %q", i, line, f.Name, f.Value)
		}
		b.WriteString(line)
	}
	b.WriteString("\r\n")
	if got, want := b.String(), head[:r.HeadLen]; got != want {
		t.Errorf("request line and Lines: got %q, want %q", got, want)
	}
}

func TestParseRequestIncomplete(t *testing.T) {
	for _, tc := range acceptedTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := ParseRequest([]byte(tc.head), &r); err != nil {
				t.Fatal(err)
			}
			for n := range r.HeadLen {
				if err := ParseRequest([]byte(tc.head[:n]), &r); err != ErrIncomplete {
					t.Fatalf("ParseRequest(%q): got %v, want ErrIncomplete", tc.head[:n], err)
				}
			}
		})
	}
}

// TestParseRequestEarlyRefusal checks that a partial head can already be refused.
func TestParseRequestEarlyRefusal(t *testing.T) {
	for _, head := range []string{
		"GET / HTTP/2",
		"GET /a#",
		"GET ftp:",
		"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n",
		"GET / HTTP/1.1\r\nX: y\r\n z",
		"CONNECT ",
		"\x16\x03",
	} {
		var r Request
		var e *Error
		if err := ParseRequest([]byte(head), &r); !errors.As(err, &e) {
			t.Errorf("ParseRequest(%q): got %v, want an *Error", head, err)
		}
	}
}

// TestParseRequestReuse checks that a second parse resets every field and reuses Fields.
func TestParseRequestReuse(t *testing.T) {
	var r Request
	first := "POST /a?b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\nX: 1\r\nY: 2\r\n\r\n"
	if err := ParseRequest([]byte(first), &r); err != nil {
		t.Fatal(err)
	}
	fields := &r.Fields[:1][0]
	second := "GET / HTTP/1.1\r\nHost: b\r\n\r\n"
	if err := ParseRequest([]byte(second), &r); err != nil {
		t.Fatal(err)
	}
	checkRequest(t, second, &r, wantRequest{method: "GET", target: "/", path: "/", query: noQuery, host: "b",
		fields: []wantField{{"Host", "b", KindHost}}})
	if &r.Fields[0] != fields {
		t.Errorf("Fields' array was not reused")
	}
}
