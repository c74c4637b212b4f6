// Package rpc is the request/reply convention of orderflow's services over NATS micro: JSON
// bodies, typed errors carried in the micro error headers, one log line per request, bounded
// concurrency, and deadlines on every call.
package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Codes of Error. Edges map them to HTTP statuses and GraphQL error codes.
const (
	CodeInvalid     = "invalid"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeStale       = "stale_read"
	CodeForbidden   = "forbidden"
	CodeUnavailable = "unavailable"
	CodeInternal    = "internal"
)

// Final reports whether an error of code is one its sender must live with (retrying cannot help):
// invalid, not found, conflict, forbidden.
func Final(code string) bool {
	return code == CodeInvalid || code == CodeNotFound || code == CodeConflict || code == CodeForbidden
}

// Forbidden is the answer to err when it is an auth.ErrForbidden, else nil.
func Forbidden(err error) *Error {
	if !errors.Is(err, auth.ErrForbidden) {
		return nil
	}
	return &Error{Code: CodeForbidden, Message: strings.TrimPrefix(err.Error(), auth.ErrForbidden.Error()+": ")}
}

// Error is a service's answer that the request failed, and why.
type Error struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Field   string            `json:"field,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Server runs endpoints: it owns their root context, logger, concurrency limit and statistics.
//
// Handlers run in their own goroutines (micro calls a handler on the subscription's goroutine, one
// request at a time), so they answer on the request's reply subject themselves, with micro's error
// headers, instead of through micro.Request, which must not be used after its handler returns.
// Because micro then sees every request as answered at once, its own statistics count requests
// only; the real ones (errors, latency) are kept here and published as each endpoint's stats data.
type Server struct {
	name     string // the service's, in span names
	ctx      context.Context
	nc       *nats.Conn
	log      *slog.Logger
	work     chan func()
	timeout  time.Duration
	classify func(error) *Error
	// trust checks callers' assertions (nil: not checked); access says who may call each
	// endpoint (default: any caller an assertion vouches for).
	trust  *auth.Trust
	access sync.Map // endpoint name → access; absent: callers

	mu    sync.Mutex
	stats map[string]*EndpointStats
}

// EndpointStats are an endpoint's own figures, in micro's stats "data".
type EndpointStats struct {
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	AverageMs    float64 `json:"averageMs"`
	totalSeconds float64
}

func (s *Server) record(endpoint string, d time.Duration, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats[endpoint]
	if st == nil {
		st = &EndpointStats{}
		s.stats[endpoint] = st
	}
	st.Requests++
	if failed {
		st.Errors++
	}
	st.totalSeconds += d.Seconds()
	st.AverageMs = st.totalSeconds / float64(st.Requests) * 1000
}

// Stats returns a copy of endpoint's figures.
func (s *Server) Stats(endpoint string) EndpointStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[endpoint]; st != nil {
		return *st
	}
	return EndpointStats{}
}

// Limits are how many requests a server handles at once and how long each may take.
type Limits struct {
	Concurrency int
	Timeout     time.Duration
}

// The limits of each kind of service.
var (
	// CommandLimits: a command spends its time waiting for its stream's writer to append (a group
	// commit, a few ms; see commands.Writer), not on a connection of its own, so many can wait at
	// once; 64 keeps every writer's queue fed at the 2-core machine's saturation (~400 orders/s)
	// and sheds beyond. 10 s is longer than any append under load takes.
	CommandLimits = Limits{Concurrency: 64, Timeout: 10 * time.Second}
	// QueryLimits: a query is an indexed read on a pool of a few connections, or a wait for
	// read-your-writes that holds no connection (up to the consistency timeout, 3 s): 128 lets the
	// waits pile up without shedding the reads behind them.
	QueryLimits = Limits{Concurrency: 128, Timeout: 10 * time.Second}
	// OperationLimits: operators' requests (figures, pause, parked events, starting a rebuild) are
	// rare and may scan whole tables.
	OperationLimits = Limits{Concurrency: 8, Timeout: 30 * time.Second}
)

// NewServer returns a Server whose handlers run under ctx with at most limits.Concurrency
// requests at once and as many again waiting (more are answered CodeUnavailable at once: load
// shed), each bounded by limits.Timeout. classify turns a handler's error into the *Error sent
// back; errors it calls internal are logged and answered "internal error".
func NewServer(ctx context.Context, nc *nats.Conn, log *slog.Logger, limits Limits, classify func(error) *Error) *Server {
	concurrency, timeout := limits.Concurrency, limits.Timeout
	if concurrency <= 0 {
		concurrency = CommandLimits.Concurrency
	}
	if timeout <= 0 {
		timeout = CommandLimits.Timeout
	}
	// The queue holds as many requests as there are workers: past that, requests are shed.
	s := &Server{ctx: ctx, nc: nc, log: log, work: make(chan func(), concurrency), timeout: timeout, classify: classify,
		trust: auth.TrustFrom(ctx), stats: map[string]*EndpointStats{}}
	// Long-lived workers, not a goroutine per request: a fresh goroutine grows its stack anew for
	// every request (JSON encoding and pgx go deep), and that copying is a large share of a query's
	// CPU (profile `orderflow-bench gateway --cpuprofile`).
	for range concurrency {
		go func() {
			for {
				select {
				case job := <-s.work:
					job()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return s
}

// Handle adapts fn into a micro handler: decode Req, call fn, answer Resp or an *Error.
func Handle[Req, Resp any](s *Server, name string, fn func(ctx context.Context, req Req) (Resp, error)) micro.Handler {
	return s.overNATS(serving(s, name, fn))
}

// serveFunc carries out a request (its data, headers and subject) and answers it with respond,
// once: a handler's core, whichever way the request came (overNATS; a call in the process).
type serveFunc func(data []byte, headers nats.Header, subject string, respond func(*nats.Msg))

// overNATS serves requests that come over NATS with serve, answering on their reply subjects.
func (s *Server) overNATS(serve serveFunc) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		reply := r.Reply()
		serve(r.Data(), nats.Header(r.Headers()), r.Subject(), func(msg *nats.Msg) {
			if reply == "" {
				return
			}
			msg.Subject = reply
			if err := s.nc.PublishMsg(msg); err != nil {
				s.log.Warn("respond", "subject", r.Subject(), "err", err)
			}
		})
	})
}

// refusal is an answer that the request was not carried out (micro's error headers).
func refusal(code, message string) *nats.Msg {
	return &nats.Msg{Header: nats.Header{micro.ErrorCodeHeader: {code}, micro.ErrorHeader: {message}}}
}

// serving is Handle's core: decode Req, call fn, answer Resp or an *Error.
func serving[Req, Resp any](s *Server, name string, fn func(ctx context.Context, req Req) (Resp, error)) serveFunc {
	return func(data []byte, headers nats.Header, subject string, respond func(*nats.Msg)) {
		received, timeout := time.Now(), s.timeout
		if budget, err := strconv.ParseInt(headers.Get(BudgetHeader), 10, 64); err == nil && budget > 0 {
			timeout = min(timeout, time.Duration(budget)*time.Millisecond)
		}
		job := func() {
			start := time.Now()
			if waited := start.Sub(received); waited >= timeout {
				// Its caller has given up while it waited in the queue: doing it now would only
				// delay the requests someone still waits for (a read model that answers slowly
				// would otherwise work through a backlog nobody reads).
				s.record(name, 0, true)
				respond(refusal(CodeUnavailable, "not started before its caller's deadline"))
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, timeout-start.Sub(received))
			defer cancel()
			ctx, span := telemetry.Tracer().Start(telemetry.Extract(ctx, headers), s.name+" "+name, trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			// Requests decode with goccy/go-json (a quarter of encoding/json's cost); answers encode
			// with encoding/json: goccy's encoder runs on a frame so deep that growing the worker's
			// stack for it cost more than the encoding saved.
			var resp Resp
			ctx, err := s.caller(ctx, name, subject, headers)
			if err == nil {
				resp, err = decodeAndCall(ctx, data, headers.Get(StrictHeader) != "", fn)
			}
			msg := &nats.Msg{Header: nats.Header{}}
			if err == nil {
				msg.Data, err = json.Marshal(resp)
			}
			outcome := "ok"
			defer func() { telemetry.Observe(ctx, telemetry.NATSRequests.WithLabelValues(s.name, name, outcome), start) }()
			if err == nil {
				s.record(name, time.Since(start), false)
				if s.log.Enabled(ctx, slog.LevelDebug) { // its arguments cost allocations even when not logged
					s.log.DebugContext(ctx, "request", "endpoint", name, "outcome", "ok", "duration_ms", time.Since(start).Milliseconds())
				}
			} else {
				e := s.toError(err)
				s.record(name, time.Since(start), true)
				// Refusals (invalid, not found, conflict, stale) are answers, not incidents: debug.
				level := slog.LevelDebug
				switch e.Code {
				case CodeInternal:
					level = slog.LevelError
				case CodeUnavailable:
					level = slog.LevelInfo
				}
				s.log.Log(ctx, level, "request", "endpoint", name, "outcome", e.Code, "err", err, "duration_ms", time.Since(start).Milliseconds())
				if e.Code == CodeInternal || e.Code == CodeUnavailable {
					span.SetStatus(codes.Error, e.Message)
				}
				span.SetAttributes(attribute.String("orderflow.outcome", e.Code))
				outcome = e.Code
				msg.Data, _ = json.Marshal(e)
				msg.Header.Set(micro.ErrorCodeHeader, e.Code)
				msg.Header.Set(micro.ErrorHeader, e.Message)
			}
			respond(msg)
		}
		if s.ctx.Err() != nil {
			respond(refusal(CodeUnavailable, "shutting down"))
			return
		}
		select {
		case s.work <- job:
		default:
			// Every worker is busy and as many requests again wait: shed this one at once with an
			// answer the caller can act on (retry shortly, or another instance), rather than queue
			// work that would time out anyway.
			s.record(name, 0, true)
			s.log.Info("request shed", "endpoint", name, "outcome", CodeUnavailable)
			respond(refusal(CodeUnavailable, "busy: this instance has as much work queued as it can do; retry shortly"))
		}
	}
}

// access is who may call an endpoint.
type access int

const (
	callers  access = iota // any caller a valid assertion vouches for
	staff                  // admins and services only (Staff)
	internal               // other services, without an assertion (HandleInternal)
)

// caller returns ctx with the caller its request's assertion vouches for. A server that checks
// callers refuses a request without a valid one (but on an internal endpoint), and a customer on
// a staff endpoint.
func (s *Server) caller(ctx context.Context, endpoint, subject string, h nats.Header) (context.Context, error) {
	a, _ := s.access.Load(endpoint)
	if s.trust == nil || a == internal {
		return ctx, nil
	}
	tok := h.Get(auth.AssertionHeader)
	if tok == "" {
		return ctx, fmt.Errorf("%w: no caller assertion (header %s)", auth.ErrForbidden, auth.AssertionHeader)
	}
	p, err := s.trust.Verify(tok, subject, "", time.Now())
	if err != nil {
		return ctx, err
	}
	ctx = auth.With(ctx, p)
	if a == staff {
		return ctx, auth.Staff(ctx)
	}
	return ctx, nil
}

// HandleInternal is Handle for an endpoint only other services call (NATS permissions say which):
// it needs no caller assertion.
func HandleInternal[Req, Resp any](s *Server, name string, fn func(ctx context.Context, req Req) (Resp, error)) micro.Handler {
	s.access.Store(name, internal)
	return Handle(s, name, fn)
}

// BudgetHeader, on a request, is how long its caller will wait for the answer, in milliseconds
// (Call sets it from its context's deadline). The service works on the request only within that
// time from when it received it: one it could not start in time is answered unavailable, not done.
const BudgetHeader = "Orderflow-Budget"

// StrictHeader, on a request, makes the service refuse it as invalid if it holds a field the
// endpoint does not read (contract tests: a field the caller fills and the service ignores is one
// of them renamed). Without it, such fields are ignored, for callers of a newer release.
const StrictHeader = "Orderflow-Strict"

// strictKey marks a context whose calls carry StrictHeader.
type strictKey struct{}

// Strict returns ctx under which Call asks the service to refuse a field it does not read
// (StrictHeader).
func Strict(ctx context.Context) context.Context { return context.WithValue(ctx, strictKey{}, true) }

func decodeAndCall[Req, Resp any](ctx context.Context, data []byte, strict bool, fn func(context.Context, Req) (Resp, error)) (resp Resp, err error) {
	var req Req
	if err := gojson.Unmarshal(data, &req); err != nil {
		return resp, &Error{Code: CodeInvalid, Message: "malformed request: " + err.Error()}
	}
	if strict {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(new(Req)); err != nil {
			return resp, &Error{Code: CodeInvalid, Message: "a field the endpoint does not read: " + err.Error()}
		}
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx, req)
}

func (s *Server) toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if e := Forbidden(err); e != nil {
		return e
	}
	if s.classify != nil {
		if e := s.classify(err); e != nil {
			if e.Code == CodeInternal {
				e.Message = "internal error"
			}
			return e
		}
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// Endpoint is one endpoint of a service: its name in discovery, its subject, its handler.
type Endpoint struct {
	Name, Subject string
	Handler       micro.Handler
	// serve is Handler's core, for calls in the process (nil: over NATS only).
	serve serveFunc
}

// Serve adds service cfg with endpoints on nc (queue group "q": instances share the load),
// publishing srv's statistics, and stops it when ctx ends.
func Serve(ctx context.Context, srv *Server, cfg micro.Config, endpoints ...Endpoint) (micro.Service, error) {
	nc := srv.nc
	cfg.StatsHandler = func(e *micro.Endpoint) any { return srv.Stats(e.Name) }
	svc, err := micro.AddService(nc, cfg)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.Name, e.Handler, micro.WithEndpointSubject(e.Subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("service %s endpoint %s: %w", cfg.Name, e.Name, err)
		}
	}
	served := serveLocally(nc, endpoints)
	go func() {
		<-ctx.Done()
		stopServingLocally(served)
		_ = svc.Stop()
	}()
	return svc, nil
}

// Service is one of orderflow's NATS micro services: its name in discovery, what it does, its
// limits, how its handlers' errors become answers, and the namespace of its subjects.
type Service struct {
	Name, Description string
	Namespace         wire.Namespace
	Limits            Limits
	// Classify turns a handler's error into the *Error answered (see NewServer).
	Classify func(error) *Error
	// Metadata is published with the service in discovery.
	Metadata map[string]string
}

// Route is one endpoint of a Service: see On.
type Route func(*Server, wire.Namespace) Endpoint

// On routes endpoint (in the service's namespace) to fn, under name in discovery: fn takes the
// endpoint's request and answers its answer.
func On[Req, Resp any](name string, endpoint wire.Endpoint[Req, Resp], fn func(ctx context.Context, req Req) (Resp, error)) Route {
	return func(s *Server, ns wire.Namespace) Endpoint {
		serve := serving(s, name, fn)
		return Endpoint{Name: name, Subject: endpoint.In(ns), Handler: s.overNATS(serve), serve: serve}
	}
}

// Staff marks r as an endpoint for admins and services (the saga) only, never a customer.
func Staff(r Route) Route { return r.only(staff) }

// Internal marks r as an endpoint only other services call, without a caller assertion: NATS
// permissions say which services may send to it (see HandleInternal).
func Internal(r Route) Route { return r.only(internal) }

func (r Route) only(a access) Route {
	return func(s *Server, ns wire.Namespace) Endpoint {
		e := r(s, ns)
		s.access.Store(e.Name, a)
		return e
	}
}

// Serve serves s with routes on nc until ctx ends.
func (s Service) Serve(ctx context.Context, nc *nats.Conn, log *slog.Logger, routes ...Route) (micro.Service, error) {
	svc, _, err := s.Start(ctx, nc, log, routes...)
	return svc, err
}

// Start is Serve that also answers the Server, for endpoints added once the service's instance id
// is known.
func (s Service) Start(ctx context.Context, nc *nats.Conn, log *slog.Logger, routes ...Route) (micro.Service, *Server, error) {
	srv := NewServer(ctx, nc, log.With("service", s.Name), s.Limits, s.Classify)
	srv.name = s.Name
	endpoints := make([]Endpoint, len(routes))
	for i, r := range routes {
		endpoints[i] = r(srv, s.Namespace)
	}
	svc, err := Serve(ctx, srv, micro.Config{Name: s.Name, Version: Version, Description: s.Description, Metadata: s.Metadata}, endpoints...)
	return svc, srv, err
}

// Version is every service's version in discovery.
const Version = "0.1.0"

// DefaultTimeout bounds a Call whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Ask sends req to endpoint in namespace ns and answers its answer (see Call for its errors).
func Ask[Req, Resp any](ctx context.Context, nc *nats.Conn, ns wire.Namespace, endpoint wire.Endpoint[Req, Resp], req Req) (Resp, error) {
	return Call[Resp](ctx, nc, endpoint.In(ns), req)
}

// Call sends req to subject and decodes the answer into Resp: for subjects no wire.Endpoint names
// (an instance's own); Ask for the others. A service error comes back as *Error; no responder, a
// timeout or a broken connection as an *Error with CodeUnavailable.
func Call[Resp any](ctx context.Context, nc *nats.Conn, subject string, req any) (Resp, error) {
	var resp Resp
	data, err := json.Marshal(req)
	if err != nil {
		return resp, fmt.Errorf("call %s: encode: %w", subject, err)
	}
	answer, err := Exchange(ctx, nc, subject, data)
	if err != nil {
		return resp, err
	}
	if err := gojson.Unmarshal(answer, &resp); err != nil {
		return resp, fmt.Errorf("call %s: decode answer: %w", subject, err)
	}
	return resp, nil
}

// Exchange sends an encoded request to subject and answers the encoded answer, with Call's
// errors: the transport under Call, for a caller that encodes (and keeps) the bytes itself.
//
// A request that gets no answer for a while (a quarter of what is left of its budget, at most
// MaxTry) is sent again while the first still waits (hedged): a service's instances share its
// subject in a queue group, so the next try most likely reaches another instance than one that
// is frozen, and the first answer wins. Every request may be carried out twice: queries are
// reads, and commands carry their command id, so a command carried out twice is answered twice
// with the first answer.
func Exchange(ctx context.Context, nc *nats.Conn, subject string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if !nc.IsConnected() {
		// While reconnecting, a request would wait in the connection's buffer until its deadline:
		// answer at once, so that callers answer "unavailable, retry" instead of hanging.
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s: NATS is not connected (%s)", subject, nc.Status())}
	}
	ctx, span := telemetry.Tracer().Start(ctx, "call "+subject, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	h := nats.Header{}
	telemetry.Inject(ctx, h)
	// The caller travels, signed: the service checks it again (see auth.Trust).
	if tok, ok, err := auth.AssertRequest(ctx, subject); err != nil {
		return nil, fmt.Errorf("call %s: %w", subject, err)
	} else if ok {
		h.Set(auth.AssertionHeader, tok)
	}
	if strict, _ := ctx.Value(strictKey{}).(bool); strict {
		h.Set(StrictHeader, "true")
	}
	local := localFor(nc, subject)
	var tried atomic.Bool
	msg, err := hedged(ctx, span, func(ctx context.Context) (*nats.Msg, error) {
		if local != nil && !tried.Swap(true) { // the first try in the process, the next ones over NATS
			return local.call(ctx, subject, data, h)
		}
		return exchangeOnce(ctx, nc, subject, data, h)
	})
	if err == nil {
		if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
			e := &Error{}
			if gojson.Unmarshal(msg.Data, e) != nil || e.Code == "" {
				e = &Error{Code: code, Message: msg.Header.Get(micro.ErrorHeader)}
			}
			return nil, e
		}
		return msg.Data, nil
	}
	span.SetStatus(codes.Error, err.Error())
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, ctx.Err()
	}
	return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%s: %v", subject, err)}
}

// hedged sends a request with send and, each time a try goes unanswered for a while (see
// tryAfter), sends it again while the earlier tries still wait: the first answer wins, the others
// are dropped. Every try has the caller's whole budget, so a slow instance still finishes what it
// started (and may answer first); a frozen one costs the caller one wait. It answers the first
// answer, or the last try's error once none is left waiting.
func hedged(ctx context.Context, span trace.Span, send func(context.Context) (*nats.Msg, error)) (*nats.Msg, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the tries still waiting stop
	type answer struct {
		msg *nats.Msg
		err error
	}
	answers := make(chan answer, maxTries(ctx))
	try := func() {
		go func() {
			m, err := send(ctx)
			answers <- answer{m, err}
		}()
	}
	try()
	waiting, sent := 1, 1
	wait := time.NewTimer(tryAfter(ctx))
	defer wait.Stop()
	for {
		select {
		case a := <-answers:
			waiting--
			if a.err == nil || waiting == 0 {
				return a.msg, a.err
			}
		case <-wait.C:
			if sent >= cap(answers) {
				continue
			}
			span.AddEvent("no answer yet: sent again", trace.WithAttributes(attribute.Int("orderflow.try", sent+1)))
			try()
			waiting, sent = waiting+1, sent+1
			wait.Reset(tryAfter(ctx))
		}
	}
}

// MinTry and MaxTry bound how long a try of a request waits alone before the request is sent
// again (hedged): a quarter of what is left of its budget, within these bounds (WithTry sets
// another MaxTry). An instance answers in milliseconds unless it is overloaded or frozen; the
// earlier tries keep waiting, so an overloaded one's answer still counts.
const (
	MinTry = 250 * time.Millisecond
	MaxTry = time.Second
)

type tryKey struct{}

// WithTry makes the requests under ctx try again after at most d without an answer.
func WithTry(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, tryKey{}, d)
}

// tryAfter is how long a try waits alone before the request is sent again: a quarter of what is
// left of ctx's budget, between MinTry (or WithTry's bound, if shorter) and MaxTry (or WithTry's).
func tryAfter(ctx context.Context) time.Duration {
	deadline, _ := ctx.Deadline()
	longest, ok := ctx.Value(tryKey{}).(time.Duration)
	if !ok {
		longest = MaxTry
	}
	return min(longest, max(time.Until(deadline)/4, min(MinTry, longest)))
}

type onceKey struct{}

// Once makes the requests under ctx go once, never again while they wait (not hedged): for a
// request that is not safe to carry out twice (starting a rebuild, whose second try would be
// answered "already running" while the first starts it).
func Once(ctx context.Context) context.Context { return context.WithValue(ctx, onceKey{}, true) }

// maxTries bounds the tries of a request under ctx: one per shortest wait of its budget.
func maxTries(ctx context.Context) int {
	if once, _ := ctx.Value(onceKey{}).(bool); once {
		return 1
	}
	deadline, _ := ctx.Deadline()
	return max(1, min(64, int(time.Until(deadline)/max(tryAfterShortest(ctx), time.Millisecond))+1))
}

func tryAfterShortest(ctx context.Context) time.Duration {
	if longest, ok := ctx.Value(tryKey{}).(time.Duration); ok {
		return min(MinTry, longest)
	}
	return MinTry
}

// exchangeOnce sends one try of a request, what is left of its caller's budget in its headers.
func exchangeOnce(ctx context.Context, nc *nats.Conn, subject string, data []byte, h nats.Header) (*nats.Msg, error) {
	h = budgeted(ctx, h)
	out := &nats.Msg{Subject: subject, Data: data}
	if len(h) > 0 {
		out.Header = h
	}
	return nc.RequestMsgWithContext(ctx, out)
}

// budgeted is h with what is left of ctx's budget (BudgetHeader), a copy when ctx has a deadline.
func budgeted(ctx context.Context, h nats.Header) nats.Header {
	if deadline, ok := ctx.Deadline(); ok {
		h = nats.Header(http.Header(h).Clone())
		h.Set(BudgetHeader, strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 1), 10))
	}
	return h
}

// Calls in the process. A request to an endpoint that a service of the caller's own process serves
// (every target under `orderflow dev`) is carried out there first, without the NATS server: the
// same handler core (its caller assertion checked, its budget, its queue and load shedding, its
// span and figures), the answer handed back; only when it has not answered within the first try
// (hedged) does the request go over NATS, to whichever instance takes it. The caller's NATS
// permissions still decide: a call is made in the process only from a connection AllowLocal
// names, to a subject its permissions let it publish to.

// locals are the endpoints this process serves, by subject (several when a test runs two, or
// several platforms).
var locals = struct {
	sync.Mutex
	by map[string][]localEndpoint
}{by: map[string][]localEndpoint{}}

type localEndpoint struct {
	id    *Endpoint
	nc    *nats.Conn // the service's: a caller must be on the same NATS server (one platform)
	serve serveFunc
}

// localCallers are the connections that may call in the process, with the subjects each may
// publish to (NATS patterns); localAllowed, what they were found to allow.
var localCallers, localAllowed sync.Map // *nats.Conn → []string; localCall → bool

type localCall struct {
	nc      *nats.Conn
	subject string
}

// AllowLocal lets connection nc (a target's, as its identity) call in the process what its NATS
// permissions let it publish to: publish, NATS subject patterns ("*" a token, ">" the rest).
func AllowLocal(nc *nats.Conn, publish []string) { localCallers.Store(nc, slices.Clone(publish)) }

// ForgetLocal undoes AllowLocal, for a connection that closes.
func ForgetLocal(nc *nats.Conn) {
	localCallers.Delete(nc)
	localAllowed.Range(func(k, _ any) bool {
		if k.(localCall).nc == nc {
			localAllowed.Delete(k)
		}
		return true
	})
}

// mayCall reports whether nc may call subject in the process.
func mayCall(nc *nats.Conn, subject string) bool {
	if ok, found := localAllowed.Load(localCall{nc, subject}); found {
		return ok.(bool)
	}
	publish, found := localCallers.Load(nc)
	if !found {
		return false
	}
	ok := slices.ContainsFunc(publish.([]string), func(p string) bool { return subjectMatches(p, subject) })
	localAllowed.Store(localCall{nc, subject}, ok)
	return ok
}

// subjectMatches reports whether NATS subject pattern covers subject.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

func serveLocally(nc *nats.Conn, endpoints []Endpoint) []*Endpoint {
	locals.Lock()
	defer locals.Unlock()
	var served []*Endpoint
	for i := range endpoints {
		e := &endpoints[i]
		if e.serve == nil {
			continue
		}
		locals.by[e.Subject] = append(locals.by[e.Subject], localEndpoint{e, nc, e.serve})
		served = append(served, e)
	}
	return served
}

func stopServingLocally(served []*Endpoint) {
	locals.Lock()
	defer locals.Unlock()
	for _, e := range served {
		locals.by[e.Subject] = slices.DeleteFunc(locals.by[e.Subject], func(l localEndpoint) bool { return l.id == e })
		if len(locals.by[e.Subject]) == 0 {
			delete(locals.by, e.Subject)
		}
	}
}

// localFor is the endpoint of this process that nc may call subject on (nil: none, or not allowed).
func localFor(nc *nats.Conn, subject string) *localEndpoint {
	server := nc.ConnectedServerId()
	locals.Lock()
	var l *localEndpoint
	if ls := locals.by[subject]; len(ls) > 0 {
		// Of the instances on the caller's NATS server (a test process may run platforms of
		// several), in turn.
		turn := int(localTurn.Add(1))
		for k := range ls {
			if c := &ls[(turn+k)%len(ls)]; c.nc.ConnectedServerId() == server && server != "" {
				l = c
				break
			}
		}
	}
	locals.Unlock()
	if l == nil || !mayCall(nc, subject) {
		return nil
	}
	return l
}

// localTurn takes a process's instances of an endpoint in turn.
var localTurn atomic.Uint32

// watchers are told of every call in the process (WatchLocal).
var watchers sync.Map // *func(subject string, data []byte) → struct{}

// WatchLocal tells watch of every request carried out in the process from now until stop is
// called: for tests that count a service's requests, which such calls never show NATS.
func WatchLocal(watch func(subject string, data []byte)) (stop func()) {
	watchers.Store(&watch, struct{}{})
	return func() { watchers.Delete(&watch) }
}

// call carries out a request in the process and answers its answer, as a NATS reply would be.
func (l *localEndpoint) call(ctx context.Context, subject string, data []byte, h nats.Header) (*nats.Msg, error) {
	watchers.Range(func(w, _ any) bool { (*w.(*func(string, []byte)))(subject, data); return true })
	answer := make(chan *nats.Msg, 1)
	l.serve(data, budgeted(ctx, h), subject, func(m *nats.Msg) { answer <- m })
	select {
	case m := <-answer:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
