package lbconfig

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// MinTokenLen is the shortest secret ReadToken accepts (`openssl rand -hex 32`
// gives 64 characters).
const MinTokenLen = 16

// minDistinct is the fewest different characters a secret may have: a
// random one of MinTokenLen hex digits has fewer with a chance of about 3 in
// 100,000; "0000...", "abcabc..." and the like have fewer.
const minDistinct = 6

// ReadToken reads a secret from a file (the admin token, or the ACME cache
// key): whitespace is trimmed; a file that group or other may read, an empty
// one, one shorter than MinTokenLen, and a placeholder (see CheckSecret) are
// refused with an error that names the file and says how to fix it.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s is readable by group/other (mode %#o): run chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read token file %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(data))
	fix := fmt.Sprintf("write a random one into it (openssl rand -hex 32 > %s)", path)
	switch {
	case tok == "":
		return "", fmt.Errorf("token file %s is empty: %s", path, fix)
	case len(tok) < MinTokenLen:
		return "", fmt.Errorf("token file %s holds %d characters, fewer than %d: %s", path, len(tok), MinTokenLen, fix)
	}
	if err := CheckSecret(tok); err != nil {
		return "", fmt.Errorf("token file %s %v: %s", path, err, fix)
	}
	return tok, nil
}

// CheckSecret refuses a secret that is a placeholder rather than a random
// value: one that contains CHANGE-ME (in any case, with -, _, a space or
// nothing between the words), or has fewer than 6 different characters.
// The error reads after the secret's name: "token file F " + err.
func CheckSecret(s string) error {
	folded := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
	if strings.Contains(folded, "changeme") {
		return fmt.Errorf("holds a placeholder (it contains CHANGE-ME)")
	}
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(distinct) < minDistinct {
		return fmt.Errorf("holds a placeholder (only %d different characters; a random secret has more)", len(distinct))
	}
	return nil
}
