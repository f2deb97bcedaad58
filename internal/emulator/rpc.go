package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
)

// gRPC status codes the REST gateway maps to HTTP statuses.
const (
	codeUnknown          = 2
	codeInvalidArgument  = 3
	codeDeadlineExceeded = 4
	codeNotFound         = 5
	codePermissionDenied = 7
	codeUnimplemented    = 12
	codeInternal         = 13
	codeUnavailable      = 14
	codeUnauthenticated  = 16
)

// rpcError is an error as the grpc-gateway sends it.
type rpcError struct {
	Code int
	Msg  string
}

func (e *rpcError) Error() string { return e.Msg }

func rpcErr(code int, msg string) *rpcError { return &rpcError{Code: code, Msg: msg} }

var codeNames = map[int]string{
	codeUnknown: "Unknown", codeInvalidArgument: "InvalidArgument", codeDeadlineExceeded: "DeadlineExceeded",
	codeNotFound: "NotFound", codePermissionDenied: "PermissionDenied", codeUnimplemented: "Unimplemented",
	codeInternal: "Internal", codeUnavailable: "Unavailable", codeUnauthenticated: "Unauthenticated",
}

func httpStatusOf(code int) int {
	switch code {
	case codeInvalidArgument:
		return http.StatusBadRequest
	case codeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case codeNotFound:
		return http.StatusNotFound
	case codePermissionDenied:
		return http.StatusForbidden
	case codeUnimplemented:
		return http.StatusNotImplemented
	case codeInternal:
		return http.StatusInternalServerError
	case codeUnavailable:
		return http.StatusServiceUnavailable
	case codeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

func codeOfStatus(status int) int {
	switch status {
	case http.StatusBadRequest:
		return codeInvalidArgument
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusNotImplemented:
		return codeUnimplemented
	case http.StatusInternalServerError:
		return codeInternal
	case http.StatusServiceUnavailable:
		return codeUnavailable
	case http.StatusGatewayTimeout:
		return codeDeadlineExceeded
	}
	return codeUnknown
}

// writeRPC answers with the gateway's error body for err.
func writeRPC(w http.ResponseWriter, err *rpcError) {
	writeJSON(w, httpStatusOf(err.Code), map[string]any{"code": err.Code, "message": err.Msg, "details": []any{}})
}

// writeStatusFault answers status with the matching gRPC body.
func writeStatusFault(w http.ResponseWriter, status int) {
	writeJSON(w, status, map[string]any{"code": codeOfStatus(status), "message": strings.ToLower(http.StatusText(status)), "details": []any{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
