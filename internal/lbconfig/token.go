package lbconfig

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadToken reads a secret from a file (the admin token, or the ACME cache
// key): whitespace is trimmed; a file that group or other may read, and an
// empty one, are refused with an error that says how to fix it.
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
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty: write a token into it (e.g. openssl rand -hex 32 > %s)", path, path)
	}
	return tok, nil
}
