package h1

import (
	"errors"
	"testing"
)

// refusedTests are heads ParseRequest refuses, with the reason it gives (status 400 unless
// the reason is reasonExpectation, 417).
var refusedTests = []struct {
	name, head, reason string
}{
	{"leading crlf", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", reasonRequestLine},
	{"leading lf", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", reasonRequestLine},
	{"leading space", " GET / HTTP/1.1\r\nHost: h\r\n\r\n", reasonRequestLine},
	{"tls client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", reasonRequestLine},
	{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", reasonPRI},
	{"pri with a path", "PRI / HTTP/1.1\r\nHost: h\r\n\r\n", reasonPRI},
	{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", reasonConnect},
	{"connect with a path", "connect /rpc HTTP/1.1\r\nHost: h\r\n\r\n", reasonConnect},
	{"method with a bad byte", "GE\"T / HTTP/1.1\r\nHost: h\r\n\r\n", reasonMethod},
	{"method then tab", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", reasonMethod},
	{"method then crlf", "GET\r\nHost: h\r\n\r\n", reasonMethod},
	{"two spaces before target", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"absolute-form of another scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"absolute-form without authority", "GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"absolute-form with userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"absolute-form with a bad authority byte", "GET http://h\\x/ HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"a scheme cut short by a line end", "GET h\n", reasonTarget}, // refused at once, not awaited
	{"authority-form", "GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"asterisk-form with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"asterisk and more", "OPTIONS *a HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"relative target", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"utf-8 in target", "GET /é HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"nul in target", "GET /a\x00 HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"del in target", "GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"tab in target", "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"target then crlf", "GET /\r\nHost: h\r\n\r\n", reasonTarget},
	{"bad escape", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"short escape", "GET /%2 HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"escape at end", "GET /% HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"bad escape in query", "GET /?a=%g1 HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"fragment in query", "GET /?a#b HTTP/1.1\r\nHost: h\r\n\r\n", reasonTarget},
	{"http/1.0 with transfer-encoding", "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", reasonTEInHTTP10},
	{"http/1.0 with a bad transfer-encoding", "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", reasonTransferEncoding},
	{"http/0.9", "GET /\r\n", reasonTarget},
	{"http/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", reasonVersion},
	{"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", reasonVersion},
	{"version 1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", reasonVersion},
	{"space after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", reasonVersion},
	{"two spaces before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", reasonVersion},
	{"request line bare lf", "GET / HTTP/1.1\nHost: h\r\n\r\n", reasonBareLF},
	{"request line bare cr", "GET / HTTP/1.1\rHost: h\r\n\r\n", reasonBareCR},
	{"field bare lf", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", reasonBareLF},
	{"empty line bare lf", "GET / HTTP/1.1\r\nHost: h\r\n\n", reasonBareLF},
	{"bare cr in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", reasonBareCR},
	{"value ends in cr cr lf", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", reasonBareCR},
	{"empty line bare cr", "GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n\r\n", reasonBareCR},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", reasonObsFold},
	{"obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", reasonObsFold},
	{"first field line starts with space", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", reasonObsFold},
	{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", reasonFieldName},
	{"tab before colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", reasonFieldName},
	{"space in name", "GET / HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n", reasonFieldName},
	{"empty name", "GET / HTTP/1.1\r\nHost: h\r\n: z\r\n\r\n", reasonFieldName},
	{"no colon", "GET / HTTP/1.1\r\nHost: h\r\nXYZ\r\n\r\n", reasonFieldName},
	{"separator in name", "GET / HTTP/1.1\r\nHost: h\r\nX(Y): z\r\n\r\n", reasonFieldName},
	{"utf-8 in name", "GET / HTTP/1.1\r\nHost: h\r\nHé: z\r\n\r\n", reasonFieldName},
	{"nul in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", reasonFieldValue},
	{"del in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", reasonFieldValue},
	{"ctl in value", "GET / HTTP/1.1\r\nHost: h\r\nX: \x01\r\n\r\n", reasonFieldValue},
	{"vertical tab in value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\vb\r\n\r\n", reasonFieldValue},
	{"no host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", reasonNoHost},
	{"no fields", "GET / HTTP/1.1\r\n\r\n", reasonNoHost},
	{"duplicate host", "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", reasonDupHost},
	{"duplicate host in other case", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", reasonDupHost},
	{"empty host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", reasonHost},
	{"space in host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", reasonHost},
	{"slash in host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", reasonHost},
	{"at in host", "GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", reasonHost},
	{"percent in host", "GET / HTTP/1.1\r\nHost: a%41\r\n\r\n", reasonHost},
	{"utf-8 in host", "GET / HTTP/1.1\r\nHost: é.test\r\n\r\n", reasonHost},
	{"content-length spelt two ways", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 01\r\n\r\nx", reasonDifferingLength},
	{"conflicting content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nxy", reasonDifferingLength},
	{"empty content-length folded", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n 5\r\n\r\nhello", reasonLength},
	{"empty content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", reasonLength},
	{"content-length with plus", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", reasonLength},
	{"negative content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", reasonLength},
	{"content-length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\nx", reasonLength},
	{"content-length with inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", reasonLength},
	{"content-length in hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", reasonLength},
	{"content-length with underscore", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1_0\r\n\r\n", reasonLength},
	{"huge content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n", reasonLength},
	{"content-length and transfer-encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", reasonLengthWithTE},
	{"transfer-encoding and content-length", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", reasonLengthWithTE},
	{"transfer-encoding twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", reasonTransferEncoding},
	{"transfer-encoding list", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", reasonTransferEncoding},
	{"transfer-encoding chunked twice in one", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", reasonTransferEncoding},
	{"transfer-encoding with a parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", reasonTransferEncoding},
	{"transfer-encoding xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", reasonTransferEncoding},
	{"transfer-encoding empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", reasonTransferEncoding},
	{"transfer-encoding with a space before the colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n", reasonFieldName},
	{"transfer-encoding with a vertical tab", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\vchunked\r\n\r\n", reasonFieldValue},
	{"transfer-encoding identity", "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: identity\r\n\r\n", reasonTransferEncoding},
	{"two upgrade fields", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n", reasonDupUpgrade},
	{"expect other", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", reasonExpectation},
	{"expect other in http/1.0", "POST / HTTP/1.0\r\nExpect: x\r\n\r\n", reasonExpectation},
}

func TestParseRequestRefused(t *testing.T) {
	for _, tc := range refusedTests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := ParseRequest([]byte(tc.head), &r)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseRequest(%q): got %v, want an *Error", tc.head, err)
			}
			status := 400
			if tc.reason == reasonExpectation {
				status = 417
			}
			if e.Reason != tc.reason || e.Status != status {
				t.Errorf("ParseRequest(%q): %d %q, want %d %q", tc.head, e.Status, e.Reason, status, tc.reason)
			}
			if got, want := err.Error(), "h1: "+tc.reason; got != want {
				t.Errorf("Error(): got %q, want %q", got, want)
			}
		})
	}
}
