package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"outrigger/internal/balancer"
)

// BenchmarkListBackends measures GET /api/backends (auth, snapshot, JSON) for 16 backends.
func BenchmarkListBackends(b *testing.B) {
	pool, err := balancer.NewPool(balancer.PoolOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 16 {
		if _, err := pool.Add(fmt.Sprintf("app-%d", i), fmt.Sprintf("http://10.0.0.%d:8080", i+1)); err != nil {
			b.Fatal(err)
		}
	}
	h := NewHandler(pool, nil, Options{Token: func() string { return testToken }})
	req := httptest.NewRequest("GET", "/api/backends", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
