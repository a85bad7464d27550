package store

import (
	"context"
	"fmt"
	"time"

	"outrigger/internal/app/pgretry"
)

const (
	// discardBudget is how long a failed upload may take to delete what it wrote before it
	// answers (its own budget may be spent).
	discardBudget = 500 * time.Millisecond
	// maxFailed bounds the failed uploads kept for DeleteFailedUploads; beyond, the
	// stale-upload sweep deletes them (unless they were finished late, see discard).
	maxFailed = 10_000
)

// discard deletes the file id of a failed upload, with its chunks. When the database does
// not answer in time, the id is kept for DeleteFailedUploads: statements that were held by
// a network gone silent may still run when it heals, finishing the file after its upload
// answered 503 (the stale-upload sweep deletes only unfinished ones), so its deletion must
// be retried, not left to the sweep.
func (s *Store) discard(ctx context.Context, id string) error {
	// The caller's ctx may be what failed (client gone), and its budget may be spent.
	dctx := pgretry.WithBudget(context.WithoutCancel(ctx), discardBudget)
	_, err := s.exec(dctx, "DELETE FROM files WHERE id = $1", id)
	if err == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failed) < maxFailed {
		s.failed = append(s.failed, id)
		return fmt.Errorf("delete failed upload %s (retried later): %w", id, err)
	}
	return fmt.Errorf("delete failed upload %s (left to the stale upload sweep): %w", id, err)
}

// DeleteFailedUploads retries the deletion of the failed uploads that could not be deleted
// when they failed (the database was away). It returns how many it deleted and how many are
// left; run it now and then (the app does every 10 seconds).
func (s *Store) DeleteFailedUploads(ctx context.Context) (deleted, left int, err error) {
	s.mu.Lock()
	ids := s.failed
	s.failed = nil
	s.mu.Unlock()
	for i, id := range ids {
		if _, err = s.exec(ctx, "DELETE FROM files WHERE id = $1", id); err != nil {
			s.mu.Lock()
			s.failed = append(s.failed, ids[i:]...)
			left = len(s.failed)
			s.mu.Unlock()
			return deleted, left, fmt.Errorf("delete failed uploads: %w", err)
		}
		deleted++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return deleted, len(s.failed), nil
}
