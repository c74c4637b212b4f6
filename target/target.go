// Package target is what every deployable part of orderflow is: a named value its own package
// exports (commands/order.Target, queries/orders.Target, fulfillment.Target, gateway.Target, …),
// started from the dependencies its process shares (Deps). A process runs any set of targets:
// `orderflow serve --target=a,b` starts those, `orderflow dev` all of them.
//
// A target declares what it holds of the shared resources (its share of the event store's
// connections, the databases it keeps and its connections to each), so that the process opens each
// pool once, sized for the targets it runs.
package target

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/wire"
)

// Target is one deployable part of the platform.
type Target struct {
	// Name is what --target names it by.
	Name string
	// EventStoreConns is its share of the process's event store pool; 0: it does not use the store.
	EventStoreConns int32
	// Databases are the PostgreSQL schemas it keeps or reads, each with its share of connections.
	Databases []Database
	// Start starts it under ctx (which ends when the process stops) and returns once it serves.
	Start func(ctx context.Context, d Deps, p *Process) error
}

// Database is a schema a target uses and what it may hold of it at once.
type Database struct {
	Schema string
	Conns  int32
	// Reads: the target only reads it, answering queries: its connections come from a pool of
	// their own that waits only briefly for a lock or a statement (pgschema.OpenReads), so a read
	// model someone locked answers "unavailable" at once instead of filling the query service.
	Reads bool
}

// Deps are the dependencies of one process, shared by the targets it runs.
type Deps struct {
	// Store is the event store, with every upcaster; nil when no target of the process needs it.
	Store eventstore.Store
	// Head is the position of the log's last event (nil: the store cannot tell).
	Head func(context.Context) (eventstore.Position, error)
	// Keys are the data keys of the personal data in Store's events (see package personal).
	Keys personal.Keys
	// Writer is what the command services of this process write through: one writer per stream,
	// its decided state cached (commands.Writer over Store).
	Writer    *commands.Writer
	NC        *nats.Conn
	JS        jetstream.JetStream
	Namespace wire.Namespace
	Log       *slog.Logger
	Metrics   *prometheus.Registry
	// Pool is the process's pool of a schema some target declared in Databases; ReadPool its pool
	// of a schema declared with Reads.
	Pool, ReadPool func(schema string) *pgxpool.Pool
	// EventStoreURL and DatabaseURL(schema) locate the databases, for what opens connections of
	// its own (a rebuild builds its new version over a connection of its own).
	EventStoreURL string
	DatabaseURL   func(schema string) string
	// ConsistencyTimeout bounds a read-your-writes wait, for every target that answers queries.
	ConsistencyTimeout time.Duration
}

// Process is what the targets of one process share while they run: background work, readiness
// checks, what to do on the way out.
type Process struct {
	ctx     context.Context
	wg      sync.WaitGroup
	mu      sync.Mutex
	checks  []func(context.Context) error
	cleanup []func()
	values  map[any]any
	handler http.Handler
}

// Keys of what one target of a process provides to the others (Provide, Lookup).
const (
	// PaymentProviderURL is the URL of the card gateway the payment-provider target serves.
	PaymentProviderURL = "payment-provider.url"
)

// Provide makes v what Lookup(key) answers, for the targets started after this one.
func (p *Process) Provide(key string, v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.values[key] = v
}

// Lookup answers what a target of this process provided under key, if one did.
func Lookup[T any](p *Process, key string) (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.values[key].(T)
	return v, ok
}

// Serve makes h the process's HTTP handler (the gateway's API); without one, the process serves
// its health and metrics only.
func (p *Process) Serve(h http.Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handler = h
}

// Handler is what a target gave Serve, or nil.
func (p *Process) Handler() http.Handler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handler
}

// NewProcess returns a Process whose background work runs under ctx.
func NewProcess(ctx context.Context) *Process { return &Process{ctx: ctx, values: map[any]any{}} }

// Go runs f in the background until the process stops (Stop waits for it), under a context
// with ctx's values: a target passes its own (its telemetry, its signer).
func (p *Process) Go(ctx context.Context, f func(ctx context.Context)) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(p.ctx, cancel)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer stop()
		defer cancel()
		f(rctx)
	}()
}

// Check adds a readiness check (/readyz).
func (p *Process) Check(check func(context.Context) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checks = append(p.checks, check)
}

// OnStop registers f to run when the process stops, after its background work ended, in reverse
// order of registration.
func (p *Process) OnStop(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanup = append(p.cleanup, f)
}

// Ready runs every readiness check; the first failure is the answer.
func (p *Process) Ready(ctx context.Context) error {
	p.mu.Lock()
	checks := p.checks
	p.mu.Unlock()
	for _, check := range checks {
		if err := check(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Share gives the targets of a process one value per key: the first caller makes it with make,
// the others get the same (the projection metrics of the projector and the saga).
func Share[T any](p *Process, key any, make func() T) T {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.values[key]; ok {
		return v.(T)
	}
	v := make()
	p.values[key] = v
	return v
}

// Wait blocks until the background work ended (ctx must have ended), then runs the cleanups.
func (p *Process) Wait() {
	p.wg.Wait()
	p.mu.Lock()
	cleanup := p.cleanup
	p.cleanup = nil
	p.mu.Unlock()
	for i := len(cleanup) - 1; i >= 0; i-- {
		cleanup[i]()
	}
}
