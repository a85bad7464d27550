package h1

import (
	"math/rand/v2"
	"testing"
)

// TestSkipValue compares skipValue with a byte-by-byte scan.
func TestSkipValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []byte{0, '\t', '\n', '\r', 0x1f, ' ', '!', 0x7e, 0x7f, 0x80, 0xff}
	for range 20000 {
		buf := make([]byte, rng.IntN(40))
		for j := range buf {
			if rng.IntN(16) == 0 {
				buf[j] = special[rng.IntN(len(special))]
			} else {
				buf[j] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		for i := range len(buf) + 1 {
			want := i
			for want < len(buf) && valueSet[buf[want]] {
				want++
			}
			if got := skipValue(buf, i); got != want {
				t.Fatalf("skipValue(%q, %d): got %d, want %d", buf, i, got, want)
			}
		}
	}
}

// TestByteSets checks the sets against their definitions, byte by byte.
func TestByteSets(t *testing.T) {
	isAlnum := func(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9' }
	in := func(c byte, s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] == c {
				return true
			}
		}
		return false
	}
	for i := range 256 {
		c := byte(i)
		checks := []struct {
			set  string
			got  bool
			want bool
		}{
			{"tchar", tcharSet[c], isAlnum(c) || in(c, "!#$%&'*+-.^_`|~")},
			{"path", pathSet[c], 0x21 <= c && c <= 0x7e && !in(c, "#%?")},
			{"query", querySet[c], 0x21 <= c && c <= 0x7e && !in(c, "#%")},
			{"host", hostSet[c], isAlnum(c) || in(c, "-._~!$&'()*+,;=:[]")},
			{"value", valueSet[c], c == '\t' || c == ' ' || 0x21 <= c && c <= 0x7e || c >= 0x80},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%s set, byte %#x: got %t, want %t", ch.set, c, ch.got, ch.want)
			}
		}
	}
}
