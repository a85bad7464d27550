package pgretry

import (
	"context"
	"sync"
	"time"
)

// Budget is how long one request may wait on the database in all: every call made with a
// context that carries it (WithBudget) spends from it the time it took, retries and backoff
// included, and gets the rest as its deadline. Time spent on anything else (reading the
// request body, writing the response, hashing a password) is not counted.
type Budget struct {
	total time.Duration

	mu    sync.Mutex
	spent time.Duration
}

type budgetKey struct{}

// WithBudget returns ctx carrying a new Budget of d (d <= 0: none, each call then gets the
// DB's own budget).
func WithBudget(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, &Budget{total: d})
}

// Renew gives ctx's Budget back in full. A transfer calls it after each chunk it stored or
// sent: the budget then bounds the wait on the database without progress (one chunk's write
// or read), not the whole of a long upload or download.
func Renew(ctx context.Context) {
	if b := budgetFrom(ctx); b != nil {
		b.mu.Lock()
		b.spent = 0
		b.mu.Unlock()
	}
}

func budgetFrom(ctx context.Context) *Budget {
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}

func (b *Budget) left() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total - b.spent
}

func (b *Budget) spend(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spent += d
}
