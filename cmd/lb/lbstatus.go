package main

import "outrigger/internal/admin"

// certificates lists the names the HTTPS listener serves, for GET /api/status.
func (s *lbServer) certificates() []admin.Certificate {
	if s.certs == nil {
		return nil
	}
	var out []admin.Certificate
	for _, c := range s.certs.Certificates() {
		ac := admin.Certificate{Name: c.Name}
		if !c.NotAfter.IsZero() {
			t := c.NotAfter.UTC()
			ac.NotAfter = &t
		}
		out = append(out, ac)
	}
	return out
}
