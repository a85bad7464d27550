package frontend

import (
	"strings"
	"testing"
)

// smugglingCorpus is FuzzFraming's seed corpus: request-smuggling and framing payloads from
// the public literature (PortSwigger's "HTTP Desync Attacks" and "HTTP/1.1 must die" by James
// Kettle, the HTTP Request Smuggler and smuggler.py mutations of Transfer-Encoding, Regilero's
// and Amit Klein's papers, RFC 9112's framing rules and their robustness clauses), each with
// a valid request pipelined behind it where a desync would show, and valid traffic
// (HTTP/1.0, pipelining, upgrades, expectations). Every entry runs at the four positions.
var smugglingCorpus = []struct{ name, payload string }{
	// CL.TE and TE.CL: both framings in one request.
	{"cl.te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"},
	{"cl.te smuggled get", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n"},
	{"te.cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"},
	{"te.cl smuggled get", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n"},
	{"te.cl classic", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\nQ\r\n\r\n"},
	{"cl.te zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},

	// TE.TE: Transfer-Encoding obfuscations.
	{"te xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
	{"te chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n0\r\n\r\n"},
	{"te upper case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"te mixed case name", "POST / HTTP/1.1\r\nHost: a\r\ntRaNsFeR-eNcOdInG: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"te space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"},
	{"te tab before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"},
	{"te tab value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"te vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"},
	{"te form feed", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0cchunked\r\n\r\n0\r\n\r\n"},
	{"te nul", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x00chunked\r\n\r\n0\r\n\r\n"},
	{"te trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"te two spaces", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n"},
	{"te twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n"},
	{"te twice chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"te x then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"te list chunked identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
	{"te list identity chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"},
	{"te list gzip chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
	{"te quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"},
	{"te parameter", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"},
	{"te underscore", "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"},
	{"te folded value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
	{"te folded continuation", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n0\r\n\r\n"},
	{"te after folded line", "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"te leading space", "POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"te bare lf before", "POST / HTTP/1.1\r\nHost: a\r\nX: y\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"te name split", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\r\n: chunked\r\n\r\n0\r\n\r\n"},
	{"te obs-text", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xffchunked\r\n\r\n0\r\n\r\n"},
	{"te empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc"},
	{"te cr inside", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun\rked\r\n\r\n0\r\n\r\n"},
	{"te in http/1.0", "POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"te in http/1.0 with cl", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"},

	// Content-Length obfuscations.
	{"cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"},
	{"cl differing list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!"},
	{"cl twice same", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"cl twice differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
	{"cl leading zero twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello"},
	{"cl plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"},
	{"cl minus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"},
	{"cl hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"},
	{"cl exponent", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5e0\r\n\r\nhello"},
	{"cl decimal", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\nhello"},
	{"cl trailing space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \r\n\r\nhelloGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"cl inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n0123456789"},
	{"cl space before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"},
	{"cl tab value", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t5\r\n\r\nhello"},
	{"cl empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"cl empty folded", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello"},
	{"cl empty folded long", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"cl folded", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n 0\r\n\r\nhello"},
	{"cl underscore", "POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\nhello"},
	{"cl huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nhello"},
	{"cl 18 digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000000000000000005\r\n\r\nhello"},
	{"cl nul", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \x005\r\n\r\nhello"},
	{"cl longer than sent", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhello"},
	{"cl on get", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 34\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n"},
	{"cl zero on get then get", "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"0.cl early answer", "GET /redirect HTTP/1.1\r\nHost: a\r\nContent-Length: 23\r\n\r\nGET /404 HTTP/1.1\r\nX: y"},

	// Chunk sizes, extensions and trailers.
	{"chunk 16 hex digits", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000003\r\nabc\r\n0\r\n\r\n"},
	{"chunk 15 hex digits", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n000000000000003\r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunk overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"},
	{"chunk overflow to small", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n"},
	{"chunk negative", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"},
	{"chunk hex prefix", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"},
	{"chunk extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0;x\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunk space before extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x\r\nabc\r\n0\r\n\r\n"},
	{"chunk trailing space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunk extension with crlf in quotes", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"\r\nabc\r\n\"\r\nabc\r\n0\r\n\r\n"},
	{"chunk extension bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n"},
	{"chunk size bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"},
	{"chunk data bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n"},
	{"chunk data too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"},
	{"chunk data too short", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunk last with trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 3\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunk trailer folded", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n z\r\n\r\n"},
	{"chunk trailer bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n"},
	{"chunk trailer smuggled request", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\n\r\n"},
	{"chunk no last chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"},
	{"chunk then garbage", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nXXX"},
	{"chunk empty size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n"},
	{"chunk many", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1\r\nx\r\n", 200) + "0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunk large", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n12000\r\n" + strings.Repeat("L", 0x12000) + "\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},

	// Line ends, whitespace and control bytes.
	{"bare lf everywhere", "GET / HTTP/1.1\nHost: a\n\n"},
	{"bare lf request line", "GET / HTTP/1.1\nHost: a\r\n\r\n"},
	{"bare lf end of head", "GET / HTTP/1.1\r\nHost: a\r\n\n"},
	{"bare cr request line", "GET / HTTP/1.1\rHost: a\r\n\r\n"},
	{"bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"},
	{"cr cr lf", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n"},
	{"nul in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n"},
	{"nul in target", "GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"del in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"},
	{"obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"},
	{"first field folded", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"},
	{"leading crlf", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"crlf between requests", "GET /a HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"two spaces in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"tab in request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"},
	{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"},
	{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"},
	{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"},
	{"separator in name", "GET / HTTP/1.1\r\nHost: a\r\nX(Y): z\r\n\r\n"},
	{"utf-8 in name", "GET / HTTP/1.1\r\nHost: a\r\nH\xc3\xa9: z\r\n\r\n"},
	{"obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \x80\r\n\r\n"},

	// Versions and methods.
	{"http/0.9", "GET /\r\n"},
	{"http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n"},
	{"http/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
	{"lower case version", "GET / http/1.1\r\nHost: a\r\n\r\n"},
	{"version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n"},
	{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	{"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"lower case method", "get / HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"unknown method", "PROPFIND /dav HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy"},
	{"method with bad byte", "GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"tls hello on plain", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},

	// Targets and Host.
	{"absolute-form", "GET http://a/abs?q=1 HTTP/1.1\r\nHost: b\r\n\r\n"},
	{"absolute-form no path", "GET http://a HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"absolute-form https port", "GET https://a:8443/p HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"absolute-form bad bracket", "GET http://[/ HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"asterisk options", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"asterisk get", "GET * HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"authority-form get", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"bad escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"odd target bytes", "GET /a\"b<c>{d}|e^f`g\\h?i;j HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"double slash", "GET //evil.example/x HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"no host", "GET / HTTP/1.1\r\n\r\n"},
	{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
	{"two hosts other case", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"},
	{"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
	{"host with at", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"},
	{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n"},

	// HTTP/1.0.
	{"http/1.0", "GET /old HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n"},
	{"http/1.0 keep-alive pipelined", "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"http/1.0 body", "POST /old HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"http/1.0 expect", "POST /old HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nxy"},
	{"http/1.0 upgrade", "GET / HTTP/1.0\r\nConnection: keep-alive, upgrade\r\nUpgrade: websocket\r\n\r\nGET /after HTTP/1.0\r\n\r\n"},

	// Pipelining and keep-alive.
	{"three gets", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"post then get", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /g HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"chunked post then get", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"head then get", "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"close then get", "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"get with body then get", "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n"},
	{"incomplete request line", "GET / HTT"},

	// Upgrades and expectations.
	{"websocket upgrade refused", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"h2c upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"},
	{"two upgrade fields", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n"},
	{"upgrade with body", "POST /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabcGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"expect continue", "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	{"expect other", "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello"},
	{"expect continue and other", "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\nContent-Length: 5\r\n\r\nhello"},
	{"expect continue chunked", "POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},

	// Hop-by-hop and spoofing fields (framing must not change).
	{"connection names content-length", "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"},
	{"connection names transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"connection names host", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n"},
	{"spoofed forwarding", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\r\n"},
	{"te header trailers", "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nTrailer: X\r\n\r\n"},
	{"large head", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("h", 12<<10) + "\r\n\r\n"},
	{"head over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("h", 20<<10) + "\r\n\r\n"},
	{"many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 500) + "\r\n"},
}

func TestSmugglingCorpusSize(t *testing.T) {
	if len(smugglingCorpus) < 100 {
		t.Fatalf("the seed corpus has %d payloads, want at least 100", len(smugglingCorpus))
	}
	seen := map[string]bool{}
	for _, s := range smugglingCorpus {
		if seen[s.name] {
			t.Errorf("two seeds named %q", s.name)
		}
		seen[s.name] = true
	}
}
