package app

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"outrigger/internal/app/store"
	"outrigger/internal/clientip"
)

// credentials is the body of signup and login.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Valid checks the shape only; signup checks the rules (checkCredentials).
func (c credentials) Valid() string {
	if c.Username == "" || c.Password == "" {
		return "username and password are required"
	}
	return ""
}

type userBody struct {
	Username string `json:"username"`
}

type meBody struct {
	Username string `json:"username"`
	Instance string `json:"instance"`
	Version  string `json:"version"`
}

// handleSignup: 201 {"username"}; 409 taken; 400 invalid.
func handleSignup(logger *slog.Logger, acc *accounts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := decode[credentials](w, r)
		if err != nil {
			writeRequestError(w, err)
			return
		}
		if p := checkCredentials(c.Username, c.Password); p != "" {
			writeError(w, http.StatusBadRequest, p)
			return
		}
		switch err := acc.signup(r.Context(), c.Username, c.Password); {
		case err == nil:
			encode(w, http.StatusCreated, userBody{Username: c.Username})
		case errors.Is(err, store.ErrUsernameTaken):
			writeError(w, http.StatusConflict, "username taken")
		default:
			unavailable(w, r, logger, "signup", err)
		}
	})
}

// handleLogin: 200 {"username"} and a session cookie with a new id; 401; 429
// with Retry-After.
func handleLogin(logger *slog.Logger, ips *clientip.Resolver, acc *accounts, ss *sessionStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := decode[credentials](w, r)
		if err != nil {
			writeRequestError(w, err)
			return
		}
		user, err := acc.login(r.Context(), ips.ClientIP(r), c.Username, c.Password)
		if err != nil {
			writeLoginError(w, r, logger, err)
			return
		}
		if err := ss.start(w, r, user); err != nil {
			unavailable(w, r, logger, "start session", err)
			return
		}
		encode(w, http.StatusOK, userBody{Username: user.Username})
	})
}

// writeLoginError answers a failed login: 429, 401 or 503.
func writeLoginError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var limited *limitedError
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(limited.retryAfterSeconds()))
		writeError(w, http.StatusTooManyRequests, limited.Error())
	case errors.Is(err, errBadCredentials):
		writeError(w, http.StatusUnauthorized, err.Error())
	default:
		unavailable(w, r, logger, "login", err)
	}
}

// handleLogout: 204; the session row is deleted and the cookie expired.
func handleLogout(logger *slog.Logger, ss *sessionStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ss.end(w, r); err != nil {
			unavailable(w, r, logger, "end session", err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleMe: 200 {"username","instance","version"}; 401 without a session.
func handleMe(cfg Config, logger *slog.Logger, ss *sessionStore) http.Handler {
	return ss.require(logger, func(w http.ResponseWriter, r *http.Request, user store.User) {
		encode(w, http.StatusOK, meBody{Username: user.Username, Instance: cfg.Instance, Version: cfg.Version})
	})
}
