package lbconfig

import "reflect"

// RestartNeeded returns the key paths whose change a reload cannot apply
// (listener addresses, the TLS set-up, the admin certificate, the state
// file), so that the reload can log "restart needed for X". Certificate
// files at unchanged paths are re-read by a reload, and tls.hsts applies
// per response: neither is listed.
func RestartNeeded(old, cur *Config) []string {
	var out []string
	if old.Listen != cur.Listen {
		out = append(out, "listen")
	}
	if old.HTTPListen != cur.HTTPListen {
		out = append(out, "http_listen")
	}
	if !reflect.DeepEqual(withoutHSTS(old.TLS), withoutHSTS(cur.TLS)) {
		out = append(out, "tls")
	}
	if old.Admin.Listen != cur.Admin.Listen {
		out = append(out, "admin.listen")
	}
	if old.Admin.CertFile != cur.Admin.CertFile || old.Admin.KeyFile != cur.Admin.KeyFile {
		out = append(out, "admin.cert_file/key_file")
	}
	if old.StateFile != cur.StateFile {
		out = append(out, "state_file")
	}
	return out
}

// withoutHSTS returns a copy of t with HSTS cleared (nil stays nil).
func withoutHSTS(t *TLS) *TLS {
	if t == nil {
		return nil
	}
	c := *t
	c.HSTS = ""
	return &c
}
