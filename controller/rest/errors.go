package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/state"
)

// apiError is an error answer.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(field, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Field: field, Message: fmt.Sprintf(format, a...)}
}

func invalid(field, format string, a ...any) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid", Field: field, Message: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, a...)}
}

func unavailable(format string, a ...any) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf(format, a...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	switch e.Status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="mvstack"`)
	}
	writeJSON(w, e.Status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// fromApply maps an Apply error to an answer; field names the request field
// the command was built from, if any.
func fromApply(err error, field string) *apiError {
	switch {
	case errors.Is(err, replica.ErrNotLeader), errors.Is(err, replica.ErrNoQuorum):
		return unavailable("no leader with a quorum took the write; nothing was applied: %v", err)
	case errors.Is(err, state.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, state.ErrTransition), errors.Is(err, state.ErrInvalid):
		return invalid(field, "%v", err)
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// decode reads exactly one JSON object into v, refusing unknown fields.
func decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "malformed JSON: data after the object")
	}
	return nil
}

func decodeError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var big *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("", "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "malformed JSON: unexpected end of input")
	case errors.As(err, &syn):
		return badRequest("", "malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("", "wrong type: got JSON %s, want an object", typ.Value)
		}
		return badRequest(typ.Field, "field %q: wrong type: got JSON %s, want %s", typ.Field, typ.Value, jsonKind(typ.Type.Kind().String()))
	case errors.As(err, &big):
		return badRequest("", "body larger than %d bytes", big.Limit)
	}
	// encoding/json reports unknown fields only as text.
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badRequest(f, "unknown field %q", f)
	}
	return badRequest("", "malformed JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return "a number"
}
