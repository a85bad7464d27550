package labfleet

import "context"

// CertFile is the fleet's self-signed certificate (PEM), which names the virtual IP: what
// a browser or `curl --cacert` on the machine trusts to reach the fleet.
func (f *Fleet) CertFile() string { return f.certFile }

// Start starts the app's current binary again, e.g. after its host crashed and booted;
// it does not wait for it to be healthy (WaitHealthy).
func (a *App) Start(ctx context.Context) error { return a.start(ctx, a.Bin) }
