package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"outrigger/internal/balancer"
)

// stateFile keeps the operator's drain states by backend name across lb
// restarts (state_file). It is rewritten atomically on every change.
type stateFile struct {
	path string
	mu   sync.Mutex // serialises writes so the newest snapshot wins
}

// stateDoc is the file's JSON.
type stateDoc struct {
	// Backends maps a backend name to "active" or "draining".
	Backends map[string]string `json:"backends"`
}

// load returns the drain states in the file; a missing file is empty.
func (s *stateFile) load() (map[string]bool, error) {
	out := map[string]bool{}
	if s == nil || s.path == "" {
		return out, nil
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("state file %s: %w", s.path, err)
	}
	for name, st := range doc.Backends {
		out[name] = st == balancer.StateDraining.String()
	}
	return out, nil
}

// save writes the pool's current drain states (temp file, fsync, rename).
func (s *stateFile) save(pool *balancer.Pool) error {
	if s == nil || s.path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	doc := stateDoc{Backends: map[string]string{}}
	for _, st := range pool.Snapshot() {
		doc.Backends[st.Name] = st.State.String()
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// draining lists the names marked draining, sorted (for logs).
func draining(states map[string]bool) []string {
	var out []string
	for n, d := range states {
		if d {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
