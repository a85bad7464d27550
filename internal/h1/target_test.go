package h1

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// targetHead returns a request head for target.
func targetHead(target []byte) []byte {
	head := append([]byte("GET "), target...)
	return append(head, " HTTP/1.1\r\nHost: h\r\n\r\n"...)
}

// randomTargets returns n targets of bytes ParseRequest accepts in targets and a few it
// does not, so that about half of them parse.
func randomTargets(rng *rand.Rand, n int) [][]byte {
	const good = "aZ09-._~!$&'()*+,;=:@/[]?%%%2fF"
	const bad = "#\\\"<>{}|^` \x00\x7f\x80\xe9"
	out := make([][]byte, n)
	for i := range out {
		t := []byte{'/'}
		for range rng.IntN(24) {
			if rng.IntN(40) == 0 {
				t = append(t, bad[rng.IntN(len(bad))])
			} else {
				t = append(t, good[rng.IntN(len(good))])
			}
		}
		out[i] = t
	}
	return out
}

// TestTargetsThroughReverseProxy checks that httputil.ReverseProxy sends each accepted
// target to the backend unchanged, so forwarding it verbatim is the same; and that it
// changes a query holding ';', which ParseRequest therefore refuses.
func TestTargetsThroughReverseProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.RequestURI)
	}))
	t.Cleanup(backend.Close)
	bu, err := url.Parse(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(bu) }})
	t.Cleanup(proxy.Close)
	conn, err := net.Dial("tcp", proxy.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	forward := func(target []byte) string {
		t.Helper()
		if _, err := conn.Write(targetHead(target)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: %s %q %v", target, resp.Status, body, err)
		}
		return string(body)
	}

	if got := forward([]byte("/?a=1;b=2")); got == "/?a=1;b=2" {
		t.Errorf("ReverseProxy kept the query with ';' (%q): ParseRequest could take it", got)
	}
	targets := [][]byte{
		[]byte("/"), []byte("//x//y"), []byte("/a?"), []byte("/a??b?"), []byte("/%2F%2f%00%ff"),
		[]byte("/a;b=c/d;e?f=g%3B"), []byte("/[::1]/@:!$&'()*+,=~"), []byte("/?q=%20+x&&=="),
	}
	targets = append(targets, randomTargets(rand.New(rand.NewPCG(1, 2)), 1000)...)
	sent := 0
	for _, target := range targets {
		var r Request
		if ParseRequest(targetHead(target), &r) != nil {
			continue
		}
		sent++
		if got := forward(target); got != string(target) {
			t.Errorf("ReverseProxy sent %q for %q", got, target)
		}
	}
	if sent < 300 {
		t.Errorf("only %d of %d targets parsed", sent, len(targets))
	}
}

// TestTargetsRoundTrip checks url.ParseRequestURI(t).RequestURI() == t for accepted targets.
func TestTargetsRoundTrip(t *testing.T) {
	accepted := 0
	for _, target := range randomTargets(rand.New(rand.NewPCG(3, 4)), 20000) {
		var r Request
		if ParseRequest(targetHead(target), &r) != nil {
			continue
		}
		accepted++
		u, err := url.ParseRequestURI(string(target))
		if err != nil {
			t.Fatalf("url.ParseRequestURI(%q): %v", target, err)
		}
		if got := u.RequestURI(); got != string(target) {
			t.Errorf("url.ParseRequestURI(%q).RequestURI() = %q", target, got)
		}
	}
	if accepted < 5000 {
		t.Errorf("only %d targets parsed", accepted)
	}
}

// FuzzRequestTarget fuzzes the target of an otherwise valid head.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range []string{"/", "/a?b", "/%2f;x?y=%41", "//a", "/?", "/a#b", "/a?b;c", "*", "http://h/"} {
		f.Add([]byte(s))
	}
	hs := newHeadServer(f)
	f.Fuzz(func(t *testing.T, target []byte) {
		head := targetHead(target)
		var r Request
		if ParseRequest(head, &r) != nil {
			return
		}
		if string(r.Target) != string(target) {
			t.Fatalf("Target %q, want %q", r.Target, target)
		}
		checkReadRequest(t, head, &r)
		hs.check(t, head, &r)
	})
}

// FuzzRequestField fuzzes one field line of an otherwise valid head.
func FuzzRequestField(f *testing.F) {
	for _, s := range []string{
		"X: y", "Connection: close", "Content-Length: 12", "Transfer-Encoding: chunked", "X : y",
		"X: a\tb", "X: é", "Connection: keep-alive, Close", "Host: h", "X:", "Pragma: no-cache",
	} {
		f.Add([]byte(s))
	}
	hs := newHeadServer(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		head := append([]byte("POST / HTTP/1.1\r\nHost: h\r\n"), line...)
		head = append(head, "\r\n\r\n"...)
		var r Request
		if ParseRequest(head, &r) != nil {
			return
		}
		checkLines(t, string(head), &r)
		checkReadRequest(t, head, &r)
		hs.check(t, head, &r)
	})
}
