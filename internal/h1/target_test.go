package h1

import (
	"math/rand/v2"
	"testing"
)

// targetHead returns a request head for target.
func targetHead(target []byte) []byte {
	head := append([]byte("GET "), target...)
	return append(head, " HTTP/1.1\r\nHost: h\r\n\r\n"...)
}

// randomTargets returns n targets of bytes ParseRequest accepts in targets and a few it
// does not, so that about half of them parse.
func randomTargets(rng *rand.Rand, n int) [][]byte {
	const good = "aZ09-._~!$&'()*+,;=:@/[]?%%%2fF\\\"<>{}|^`"
	const bad = "# \x00\x7f\x80\xe9\r\n\t"
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

// TestTargetsAgainstServer checks that net/http's server takes every random target that
// ParseRequest accepts and reads the same request-target: lb forwards the target verbatim,
// so the backend reads what lb read.
func TestTargetsAgainstServer(t *testing.T) {
	hs := newHeadServer(t)
	targets := [][]byte{
		[]byte("/"), []byte("//x//y"), []byte("/a?"), []byte("/a??b?"), []byte("/%2F%2f%00%ff"),
		[]byte("/a;b=c/d;e?f=g%3B;h"), []byte("/[::1]/@:!$&'()*+,=~"), []byte("/?q=%20+x&&=="),
		[]byte("/a\"b<c>{d}|e^f`g\\h"),
	}
	targets = append(targets, randomTargets(rand.New(rand.NewPCG(1, 2)), 2000)...)
	accepted := 0
	for _, target := range targets {
		head := targetHead(target)
		var r Request
		if ParseRequest(head, &r) != nil {
			continue
		}
		accepted++
		if string(r.Target) != string(target) || string(r.Origin) != string(target) {
			t.Fatalf("%q: Target %q, Origin %q", target, r.Target, r.Origin)
		}
		checkReadRequest(t, head, &r)
		hs.check(t, head, &r)
	}
	if accepted < 600 {
		t.Errorf("only %d of %d targets parsed", accepted, len(targets))
	}
}

// TestValidOrigin checks ValidOrigin against ParseRequest.
func TestValidOrigin(t *testing.T) {
	targets := append(randomTargets(rand.New(rand.NewPCG(5, 6)), 5000), []byte("*"), []byte(""), []byte("a"), []byte("/%"), []byte("/%a"))
	for _, target := range targets {
		var r Request
		head := append([]byte("OPTIONS "), target...)
		head = append(head, " HTTP/1.1\r\nHost: h\r\n\r\n"...)
		want := ParseRequest(head, &r) == nil && r.Form != AbsoluteForm
		if got := ValidOrigin(string(target)); got != want {
			t.Errorf("ValidOrigin(%q) = %t, ParseRequest says %t", target, got, want)
		}
	}
}

// FuzzRequestTarget fuzzes the target of an otherwise valid head.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range []string{"/", "/a?b", "/%2f;x?y=%41", "//a", "/?", "/a#b", "/a?b;c", "*", "http://h/", "https://h:1?x", "HtTp://[::1]/"} {
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
