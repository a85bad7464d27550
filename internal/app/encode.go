package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"outrigger/internal/logging"
)

// maxJSONBytes bounds every JSON request body.
const maxJSONBytes = 64 << 10

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// encode writes v as JSON with the given status.
func encode[T any](w http.ResponseWriter, status int, v T) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError answers {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	encode(w, status, errorBody{Error: msg})
}

// unavailable answers 503 for a database (or other dependency) failure and
// logs what failed; the client learns nothing of the cause.
func unavailable(w http.ResponseWriter, r *http.Request, logger *slog.Logger, what string, err error) {
	logFailure(r, logger, what, err)
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "service unavailable, try again")
}

// logFailure logs that what failed with err, unless the client went away (and
// so cancelled what it asked for): that is no failure of the app, and the
// request is logged as 499 instead.
func logFailure(r *http.Request, logger *slog.Logger, what string, err error) {
	if r.Context().Err() != nil {
		logging.SetStatus(r.Context(), statusClientGone)
		return
	}
	logger.LogAttrs(r.Context(), slog.LevelError, what+" failed",
		slog.String("request_id", requestID(r)), slog.Any("err", err))
}

// validator is a decoded request body that can check itself.
type validator interface {
	// Valid returns a description of the first problem, or "".
	Valid() string
}

// requestError is a request body that could not be used; Status is 400 or 413.
type requestError struct {
	Status int
	Msg    string
	Err    error // the cause, if any
}

func (e *requestError) Error() string { return e.Msg }

func (e *requestError) Unwrap() error { return e.Err }

// decode reads one JSON value of type T from r's body (at most maxJSONBytes,
// unknown fields refused) and validates it.
func decode[T validator](w http.ResponseWriter, r *http.Request) (T, error) {
	var v T
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return v, &requestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body over %d bytes", tooBig.Limit)}
		case errors.Is(err, io.EOF):
			return v, &requestError{Status: http.StatusBadRequest, Msg: "request body: JSON object required"}
		default:
			return v, &requestError{Status: http.StatusBadRequest, Msg: "request body: " + err.Error()}
		}
	}
	if dec.More() {
		return v, &requestError{Status: http.StatusBadRequest, Msg: "request body: one JSON object only"}
	}
	if p := v.Valid(); p != "" {
		return v, &requestError{Status: http.StatusBadRequest, Msg: p}
	}
	return v, nil
}

// writeRequestError answers a decode failure.
func writeRequestError(w http.ResponseWriter, err error) {
	var re *requestError
	if errors.As(err, &re) {
		writeError(w, re.Status, re.Msg)
		return
	}
	writeError(w, http.StatusBadRequest, "bad request")
}
