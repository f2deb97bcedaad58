package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The issuer's and the API's RPCs are served twice over, on the same listener: as gRPC (what
// the SDK's clients and chainctl speak) and through the SDK's generated grpc-gateway handlers
// (the REST surface the helper speaks). The gateway runs in process
// (Register*HandlerServer): it decodes a REST request with exactly the generated code the real
// gateway runs and hands the message to the same server method gRPC does, without a loopback
// gRPC connection in between (one hop less to fail, and the recorder sees the message as the
// gateway decoded it). A gateway mux with default options is what the real issuer runs
// (sts/sts.go: "runtime.HTTPStatusFromCode, which this issuer uses with no custom error
// handler"): JSON out with unpopulated fields, unknown JSON fields discarded on the way in.

// gRPC status codes, as ints for the registry's and the device flow's own error bodies.
const (
	codeUnknown          = int(codes.Unknown)
	codeInvalidArgument  = int(codes.InvalidArgument)
	codeDeadlineExceeded = int(codes.DeadlineExceeded)
	codeNotFound         = int(codes.NotFound)
	codePermissionDenied = int(codes.PermissionDenied)
	codeUnimplemented    = int(codes.Unimplemented)
	codeInternal         = int(codes.Internal)
	codeUnavailable      = int(codes.Unavailable)
	codeUnauthenticated  = int(codes.Unauthenticated)
)

// rpcError is an error of an RPC: a gRPC code and a message.
type rpcError struct {
	Code int
	Msg  string
}

func (e *rpcError) Error() string { return e.Msg }

// GRPCStatus lets status.FromError (and so the gateway's error handler and gRPC) see the code.
func (e *rpcError) GRPCStatus() *status.Status { return status.New(codes.Code(e.Code), e.Msg) }

func rpcErr(code int, msg string) *rpcError { return &rpcError{Code: code, Msg: msg} }

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

// writeStatusFault answers status with the matching gRPC body, as a gateway behind a failing
// backend does (a fault is an HTTP status on purpose: 502 has no gRPC code of its own).
func writeStatusFault(w http.ResponseWriter, status int) {
	writeJSON(w, status, map[string]any{"code": codeOfStatus(status), "message": strings.ToLower(http.StatusText(status)), "details": []any{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) string { return bearerOf(r.Header.Get("Authorization")) }

func bearerOf(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// bearerMD is the bearer token of an RPC: the gateway passes the Authorization header on as
// "authorization" metadata, a gRPC client sends it as such.
func bearerMD(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t := bearerOf(v); t != "" {
			return t
		}
	}
	return ""
}

// newGateway is a grpc-gateway mux with default options, as the real issuer runs.
func newGateway() *runtime.ServeMux { return runtime.NewServeMux() }

// isGRPC tells a gRPC request (HTTP/2, application/grpc) from a REST one.
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// splitGRPC sends gRPC requests to g and everything else to h.
func splitGRPC(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isGRPC(r) {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Call is one RPC the emulator served, with its request message as the generated gateway
// (REST) or gRPC decoded it.
type Call struct {
	Method  string        // full gRPC method, e.g. "/chainguard.platform.oidc.SecurityTokenService/Exchange"
	Via     string        // "rest" (the generated gateway) or "grpc"
	Request proto.Message // a copy of the decoded request
}

// maxCalls bounds the recorder per method, so a long-running emulator (the demo) stays small.
const maxCalls = 256

type recorder struct {
	mu    sync.Mutex
	calls []Call
	per   map[string]int
}

func (r *recorder) add(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.per == nil {
		r.per = map[string]int{}
	}
	if r.per[c.Method] >= maxCalls {
		return
	}
	r.per[c.Method]++
	r.calls = append(r.calls, c)
}

// record keeps req as it reached the server method of method.
func (e *Emulator) record(ctx context.Context, method string, req proto.Message) {
	via := "grpc"
	if _, ok := runtime.RPCMethod(ctx); ok {
		via = "rest"
	}
	e.calls.add(Call{Method: method, Via: via, Request: proto.Clone(req)})
}

// Calls returns the RPCs served so far for method (a full gRPC method name, as the SDK's
// generated *_FullMethodName constants spell them; "" for all), oldest first.
func (e *Emulator) Calls(method string) []Call {
	e.calls.mu.Lock()
	defer e.calls.mu.Unlock()
	var out []Call
	for _, c := range e.calls.calls {
		if method == "" || c.Method == method {
			out = append(out, Call{Method: c.Method, Via: c.Via, Request: proto.Clone(c.Request)})
		}
	}
	return out
}

// ResetCalls forgets the recorded RPCs.
func (e *Emulator) ResetCalls() {
	e.calls.mu.Lock()
	e.calls.calls, e.calls.per = nil, nil
	e.calls.mu.Unlock()
}

// grpcServer is a gRPC server whose every call is counted under counters[method] (other, if
// absent) and subject to the listener's faults, as the REST routes are.
func (e *Emulator) grpcServer(counters map[string]string, other string, issuer bool) *grpc.Server {
	return grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		name, ok := counters[info.FullMethod]
		if !ok {
			name = other
		}
		e.hit(name)
		f := e.faults()
		status := f.APIStatus
		if issuer {
			if f.IssuerDown {
				// A black hole: the call never answers, until the client gives up.
				select {
				case <-ctx.Done():
				case <-e.closing:
				}
				return nil, rpcErr(codeUnavailable, "issuer down")
			}
			if err := e.wait(ctx, f.IssuerDelay); err != nil {
				return nil, rpcErr(codeDeadlineExceeded, "issuer slow")
			}
			status = f.IssuerStatus
		}
		if status != 0 {
			code := codeOfStatus(status)
			if status == http.StatusBadGateway || status == http.StatusTooManyRequests {
				code = codeUnavailable // what grpc-go makes of such an answer from a proxy
			}
			return nil, rpcErr(code, strings.ToLower(http.StatusText(status)))
		}
		return h(ctx, req)
	}))
}
