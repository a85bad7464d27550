package admin

import (
	"context"
	"fmt"
	"time"
)

// Backend is the wire form of one backend in the admin API (DESIGN's backend object).
type Backend struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	State     string    `json:"state"`
	Healthy   bool      `json:"healthy"`
	InFlight  int64     `json:"in_flight"`
	Upgraded  int64     `json:"upgraded"`
	ChecksOK  int       `json:"checks_ok"`
	LastCheck time.Time `json:"last_check"`
	LastError string    `json:"last_error"`
	Version   string    `json:"version"`
	Requests  int64     `json:"requests"`
	Failures  int64     `json:"failures"`
	// LastChange is when state or healthy last changed (an addition to DESIGN's object).
	LastChange time.Time `json:"last_change"`
}

// Backend states as the API reports them.
const (
	StateActive   = "active"
	StateDraining = "draining"
)

// addRequest is the body of POST /api/backends.
type addRequest struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// errorBody is every error answer of the API.
type errorBody struct {
	Error string `json:"error"`
}

// APIError is an error answer from the admin API.
type APIError struct {
	Status  int
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("admin API: %d: %s", e.Status, e.Message)
}

// Reload is the outcome of lb's last configuration load (GET and POST
// /api/reload): the load at start, a SIGHUP, or a POST.
type Reload struct {
	// Time is when it finished.
	Time time.Time `json:"time"`
	// OK is false when the file was refused; the running config was kept.
	OK bool `json:"ok"`
	// Error says why it was refused, one problem per line ("" when OK).
	Error string `json:"error"`
	// Trigger is "start", "signal" (SIGHUP) or "api" (POST /api/reload).
	Trigger string `json:"trigger"`
	// Config is the path of the file lb reads.
	Config string `json:"config"`
	// RestartNeeded lists the keys that changed in the file but apply only
	// after a restart of lb (listeners, tls, ...); never null.
	RestartNeeded []string `json:"restart_needed"`
	// LastSuccess is when a load last succeeded (the running config's age).
	LastSuccess time.Time `json:"last_success"`
}

// Reloader reloads lb's configuration and remembers the outcome.
type Reloader interface {
	// Reload re-reads the config file (as SIGHUP does) and returns the outcome.
	Reload(ctx context.Context) Reload
	// LastReload returns the outcome of the last load.
	LastReload() Reload
}
