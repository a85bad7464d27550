package rollout

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"outrigger/internal/admin"
)

const testToken = "test-token-0123456789"

// fleet is a set of app servers (real HTTP on loopback) whose /healthz answers
// with the version held in a file per backend, so that a real command (a shell
// script) "installs" a new version by writing that file.
type fleet struct {
	t      *testing.T
	dir    string // version files and the event log
	events string // path of the event log shared by fake lbs and commands
	apps   []app
}

type app struct {
	name string
	srv  *httptest.Server
}

// newFleet starts one app server per name, each reporting version v.
func newFleet(t *testing.T, v string, names ...string) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: t.TempDir()}
	f.events = filepath.Join(f.dir, "events")
	for _, name := range names {
		f.setVersion(t, name, v)
		verFile := filepath.Join(f.dir, name+".version")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			data, err := os.ReadFile(verFile)
			if err != nil || len(data) == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"status":"degraded"}`)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": strings.TrimSpace(string(data)), "instance": name})
		}))
		t.Cleanup(srv.Close)
		f.apps = append(f.apps, app{name: name, srv: srv})
	}
	return f
}

func (f *fleet) setVersion(t *testing.T, name, v string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name+".version"), []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fleet) url(name string) string {
	for _, a := range f.apps {
		if a.name == name {
			return a.srv.URL
		}
	}
	return ""
}

// record appends one line to the event log.
func (f *fleet) record(line string) {
	fh, err := os.OpenFile(f.events, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		f.t.Errorf("event log: %v", err)
		return
	}
	defer fh.Close()
	fmt.Fprintln(fh, line)
}

// eventLines returns the event log.
func (f *fleet) eventLines(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(f.events)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

// fakeBackend is the fake lb's state for one backend.
type fakeBackend struct {
	admin.Backend
	fails        int
	down         bool    // every check fails (the lb cannot reach it)
	refuseDrain  bool    // drain answers 500
	refuseEnable bool    // enable answers 409
	sameVersion  int     // consecutive passing checks that saw the current version
	inFlight     []int64 // successive in_flight answers after a drain; the last one sticks
}

// fakeLB implements the admin API surface that rollout uses, and simulates
// active health checks: every GET runs one real check against the backends it
// answers about, with rise/fall like lb's checker.
type fakeLB struct {
	id       string
	fl       *fleet
	rise     int
	fall     int
	hc       *http.Client
	mu       sync.Mutex
	backends []*fakeBackend
	srv      *httptest.Server
	// freezeDrains makes every drain call hang without an answer, as a frozen lb does
	// (its kernel still accepts the connection).
	freezeDrains atomic.Bool
}

func newFakeLB(t *testing.T, id string, fl *fleet, names ...string) *fakeLB {
	t.Helper()
	lb := &fakeLB{id: id, fl: fl, rise: 2, fall: 2, hc: &http.Client{Timeout: 2 * time.Second}}
	for _, n := range names {
		lb.backends = append(lb.backends, &fakeBackend{Backend: admin.Backend{Name: n, URL: fl.url(n), State: admin.StateActive}})
	}
	// Start as the real lb would be after a while: every backend checked.
	for _, b := range lb.backends {
		for range lb.rise {
			lb.check(b)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/backends", func(w http.ResponseWriter, r *http.Request) {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		out := []admin.Backend{}
		for _, b := range lb.backends {
			lb.check(b)
			out = append(out, b.Backend)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /api/backends/{name}", func(w http.ResponseWriter, r *http.Request) {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		b := lb.find(r.PathValue("name"))
		if b == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such backend"})
			return
		}
		lb.check(b)
		if b.State == admin.StateDraining && len(b.inFlight) > 0 {
			b.InFlight = b.inFlight[0]
			if len(b.inFlight) > 1 {
				b.inFlight = b.inFlight[1:]
			}
		}
		writeJSON(w, http.StatusOK, b.Backend)
	})
	mux.HandleFunc("POST /api/backends/{name}/{op}", func(w http.ResponseWriter, r *http.Request) {
		lb.mu.Lock()
		defer lb.mu.Unlock()
		b := lb.find(r.PathValue("name"))
		if b == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such backend"})
			return
		}
		switch r.PathValue("op") {
		case "drain":
			if b.refuseDrain {
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "state file not written"})
				return
			}
			b.State = admin.StateDraining
			fl.record(fmt.Sprintf("%s drain %s", lb.id, b.Name))
		case "enable":
			if b.refuseEnable {
				writeJSON(w, http.StatusConflict, map[string]string{"error": "refused for the test"})
				return
			}
			b.State = admin.StateActive
			b.InFlight = 0
			fl.record(fmt.Sprintf("%s enable %s version=%s healthy=%t fresh=%d", lb.id, b.Name, b.Version, b.Healthy, b.sameVersion))
		default:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such API call"})
			return
		}
		writeJSON(w, http.StatusOK, b.Backend)
	})
	lb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lb.freezeDrains.Load() && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/drain") {
			<-r.Context().Done() // the client gives up; nothing was changed
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(lb.srv.Close)
	return lb
}

// callTimeout bounds each call of the fake lbs' clients, as lb's -call-timeout does.
const callTimeout = 2 * time.Second

func (lb *fakeLB) client() *admin.Client {
	return &admin.Client{BaseURL: lb.srv.URL, Token: testToken, HTTP: lb.srv.Client(), CallTimeout: callTimeout}
}

func (lb *fakeLB) find(name string) *fakeBackend {
	for _, b := range lb.backends {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// state returns a copy of one backend's state.
func (lb *fakeLB) state(name string) admin.Backend {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.find(name).Backend
}

// set changes one backend's state under the lock.
func (lb *fakeLB) set(name string, fn func(b *fakeBackend)) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	fn(lb.find(name))
}

// check runs one health check against b (called with mu held).
func (lb *fakeLB) check(b *fakeBackend) {
	resp, err := lb.hc.Get(b.URL + "/healthz")
	ok := false
	var body struct{ Status, Version string }
	if err == nil && b.down {
		resp.Body.Close()
		err = fmt.Errorf("unreachable")
	}
	if err == nil {
		ok = resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil
		resp.Body.Close()
	}
	b.LastCheck = time.Now().UTC()
	if !ok {
		b.ChecksOK, b.sameVersion = 0, 0
		b.fails++
		b.LastError = "check failed"
		if b.fails >= lb.fall {
			b.Healthy = false
		}
		return
	}
	if body.Version != b.Version {
		b.sameVersion = 0
	}
	b.Version = body.Version
	b.sameVersion++
	b.ChecksOK++
	b.fails = 0
	b.LastError = ""
	if b.ChecksOK >= lb.rise {
		b.Healthy = true
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
