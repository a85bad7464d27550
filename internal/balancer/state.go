package balancer

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// State is the operator-set admission state of a backend. It is independent of health.
type State uint8

const (
	// StateActive means the backend takes new requests when it is healthy.
	StateActive State = iota
	// StateDraining means the backend takes no new requests; in-flight ones finish.
	StateDraining
)

// String returns "active" or "draining".
func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateDraining:
		return "draining"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Status is a point-in-time view of one backend, as the admin API shows it.
type Status struct {
	Name      string
	URL       string
	State     State
	Healthy   bool
	InFlight  int64
	Upgraded  int64
	ChecksOK  int
	LastCheck time.Time
	LastError string
	Version   string
	Requests  int64
	Failures  int64
	// Answered reports that the last active health check got an HTTP answer, whatever its
	// status: the backend accepts connections (see Pool.CanForward).
	Answered bool
	// LastChange is when State or Healthy last changed (or the backend was added).
	LastChange time.Time
}

var (
	// ErrNotFound means no backend has the given name.
	ErrNotFound = errors.New("backend not found")
	// ErrExists means a backend with the given name is already in the pool.
	ErrExists = errors.New("backend already exists")
	// ErrInvalid means a backend name or URL is malformed; the wrapping error says why.
	ErrInvalid = errors.New("invalid backend")
)

// ValidateName reports whether name matches [a-z0-9._-]{1,64}.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("%w: name %q must be 1 to 64 characters", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: name %q may only contain a-z 0-9 . _ -", ErrInvalid, name)
		}
	}
	return nil
}

// ValidateURL parses a backend base URL: http or https, an explicit host:port, and no path,
// query, fragment or userinfo. It returns the normalised URL.
func ValidateURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: url %q: %v", ErrInvalid, raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: url %q: scheme must be http or https", ErrInvalid, raw)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("%w: url %q: missing host", ErrInvalid, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%w: url %q: userinfo not allowed", ErrInvalid, raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return nil, fmt.Errorf("%w: url %q: path, query and fragment not allowed", ErrInvalid, raw)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: url %q: missing host", ErrInvalid, raw)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: url %q: needs a port 1-65535 (host:port)", ErrInvalid, raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}
