package h1

import (
	"net/textproto"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for k := KindOther + 1; int(k) < len(kindNames); k++ {
		name := kindNames[k]
		for _, n := range []string{name, strings.ToLower(name), strings.ToUpper(name), alternateCase(name)} {
			if got := Classify([]byte(n)); got != k {
				t.Errorf("Classify(%q): got %v, want %v", n, got, k)
			}
		}
		if got := k.String(); got != name {
			t.Errorf("%d.String(): got %q, want %q", k, got, name)
		}
		// Near misses: one byte changed, one added or removed, '-' as '_'.
		misses := []string{name[1:], name + "s", "x" + name, strings.ReplaceAll(name, "-", "_")}
		for i := range len(name) {
			b := []byte(name)
			b[i] ^= 0x01
			misses = append(misses, string(b))
			b[i] ^= 0x01 ^ 0x20
			if b[i]|0x20 < 'a' || b[i]|0x20 > 'z' { // a case change is no miss
				misses = append(misses, string(b))
			}
		}
		for _, n := range misses {
			if strings.EqualFold(n, name) {
				continue
			}
			if got := Classify([]byte(n)); got != KindOther {
				t.Errorf("Classify(%q): got %v, want other", n, got)
			}
		}
	}
	for _, n := range []string{"", "T", "X-Forwarded", "Content-Length\x00", "Content\rLength", "Hos\x14", "X-Request-Id2", "Accept"} {
		if got := Classify([]byte(n)); got != KindOther {
			t.Errorf("Classify(%q): got %v, want other", n, got)
		}
	}
	if got := KindOther.String(); got != "other" {
		t.Errorf("KindOther.String(): got %q, want %q", got, "other")
	}
	if got := Kind(200).String(); got != "other" {
		t.Errorf("Kind(200).String(): got %q, want %q", got, "other")
	}
}

// alternateCase returns s with its letters in alternating case.
func alternateCase(s string) string {
	b := []byte(s)
	for i := range b {
		if i%2 == 0 {
			b[i] = strings.ToUpper(string(b[i]))[0]
		} else {
			b[i] = strings.ToLower(string(b[i]))[0]
		}
	}
	return string(b)
}

func TestHeaderKey(t *testing.T) {
	for k := Kind(1); int(k) < len(kindNames); k++ {
		if got, want := k.HeaderKey(), textproto.CanonicalMIMEHeaderKey(k.String()); got != want {
			t.Errorf("%v.HeaderKey() = %q, want %q", k, got, want)
		}
	}
	if KindOther.HeaderKey() != "" {
		t.Error("KindOther has a header key")
	}
}
