package certs

import (
	"context"
	"errors"
	"log/slog"

	"golang.org/x/crypto/acme/autocert"

	"outrigger/internal/lbconfig"
)

type pgCache struct{ autocert.Cache }

func (c *pgCache) issueLock(ctx context.Context, name string, fn func() error) error { return fn() }
func (c *pgCache) Close()                                                            {}

func newPGCacheFromConfig(ctx context.Context, cfg lbconfig.ACME, local autocert.Cache, logger *slog.Logger) (*pgCache, error) {
	return nil, errors.New("certs: cache_database_url is not supported yet")
}
