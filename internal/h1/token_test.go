package h1

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

func TestNextToken(t *testing.T) {
	tests := []struct {
		v    string
		toks []string
	}{
		{"", nil},
		{"close", []string{"close"}},
		{" a ,\tb\t, ,c,", []string{"a", "b", "", "c"}},
		{",,", []string{"", ""}},
		{"a b, c", []string{"a b", "c"}},
	}
	for _, tc := range tests {
		var got []string
		for v := []byte(tc.v); len(v) > 0; {
			var tok []byte
			tok, v = NextToken(v)
			got = append(got, string(tok))
		}
		if strings.Join(got, "|") != strings.Join(tc.toks, "|") || len(got) != len(tc.toks) {
			t.Errorf("NextToken over %q: got %q, want %q", tc.v, got, tc.toks)
		}
	}
	if tok, rest := NextToken([]byte("a")); string(tok) != "a" || rest != nil {
		t.Errorf("NextToken(%q): got %q, %q; want %q, nil", "a", tok, rest, "a")
	}
}

func TestHasToken(t *testing.T) {
	tests := []struct {
		v, token string
		want     bool
	}{
		{"close", "close", true},
		{"Close", "close", true},
		{"keep-alive, CLOSE", "close", true},
		{" ,\tclose\t, ", "close", true},
		{"closed", "close", false},
		{"close;x", "close", false},
		{"\"close\"", "close", false},
		{"clo se", "close", false},
		{"", "close", false},
		{",,", "", false},
		{"a", "", false},
		{"upgrade", "Upgrade", true},
		{"k\u212aep", "kkep", false}, // the Kelvin sign is not ASCII
	}
	for _, tc := range tests {
		if got := HasToken([]byte(tc.v), tc.token); got != tc.want {
			t.Errorf("HasToken(%q, %q): got %t, want %t", tc.v, tc.token, got, tc.want)
		}
	}
}

// FuzzHasToken compares HasToken(v, "close") with net/http's reading of "Connection: v".
func FuzzHasToken(f *testing.F) {
	for _, s := range []string{"close", "keep-alive, Close", " , close ,", "closed", "close\x80", "\tCLOSE\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
			"GET / HTTP/1.1\r\nHost: h\r\nConnection: " + v + "\r\n\r\n")))
		if err != nil || len(req.Header["Connection"]) != 1 {
			return // not a single valid field value
		}
		if got := HasToken([]byte(v), "close"); got != req.Close {
			t.Errorf("HasToken(%q, close) = %t; net/http's Close %t", v, got, req.Close)
		}
	})
}
