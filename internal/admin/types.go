package admin

import (
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
