// Package progress lets a query service answer "at or past position P" (read your writes): it
// follows its projector's NATS progress announcements and, as the source of truth, the
// checkpoint the projector commits with its rows.
package progress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/telemetry"
	"github.com/orderflow/orderflow/wire"
)

// ErrStale: the read model did not reach the asked position in time.
var ErrStale = errors.New("read model behind the requested position")

// StaleError says how far behind the read model was when the wait ended.
type StaleError struct {
	Projection string
	Wanted     eventstore.Position
	Reached    eventstore.Position
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s read model at %s, not yet at %s", e.Projection, e.Reached, e.Wanted)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// Waiter waits for one read model to reach positions.
type Waiter struct {
	name       string
	checkpoint func(ctx context.Context) (eventstore.Position, error)
	poll       time.Duration

	mu     sync.Mutex
	latest eventstore.Position
	// parts is where each partition of a partitioned read model was announced to be (its
	// workers announce their partitions apart); latest is the slowest of them.
	parts   []eventstore.Position
	moved   eventstore.Signal
	sub     *nats.Subscription
	onMoved []func(p eventstore.Position, changed bool)
}

// NewWaiter follows the progress of read model name, announced on subject (normally
// Namespace.Progress(name)). checkpoint reads the position committed in the read model's
// database; it is consulted when announcements are not enough (a waiter that started after the
// last one, a lost message). nc may be nil: then only checkpoint is polled.
func NewWaiter(nc *nats.Conn, subject, name string, checkpoint func(ctx context.Context) (eventstore.Position, error)) (*Waiter, error) {
	w := &Waiter{name: name, checkpoint: checkpoint, poll: 200 * time.Millisecond}
	if nc != nil {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			var p wire.Progress
			if json.Unmarshal(m.Data, &p) != nil || p.Projection != name {
				return
			}
			pos, err := eventstore.ParsePosition(p.Position)
			switch {
			case err != nil:
			case p.Of > 1 && len(p.Partitions) > 0:
				w.advanceParts(pos, p.Partitions, p.Of, !p.Unchanged)
			default:
				w.advance(pos, !p.Unchanged)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("follow %s progress: %w", name, err)
		}
		w.sub = sub
	}
	return w, nil
}

// Close stops following announcements.
func (w *Waiter) Close() {
	if w.sub != nil {
		_ = w.sub.Unsubscribe()
	}
}

// advance records that the read model reached p; changed says whether its rows may differ from
// the previous announcement's (a new version swapped in announces its unmoved position as
// changed).
func (w *Waiter) advance(p eventstore.Position, changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.parts { // a position of the whole read model is every partition's
		if p.Compare(w.parts[i]) > 0 {
			w.parts[i] = p
		}
	}
	cmp := p.Compare(w.latest)
	if cmp > 0 || (cmp == 0 && changed) {
		// Caches drop what they hold before any waiting query can see the new position.
		for _, f := range w.onMoved {
			f(p, changed)
		}
	}
	if cmp > 0 {
		w.latest = p
		w.moved.Notify()
	}
}

// advanceParts records that partitions parts (of of) reached p: the read model has moved if the
// slowest partition has. A change in one partition is a change of the read model at p, whether or
// not the slowest moved.
func (w *Waiter) advanceParts(p eventstore.Position, parts []int, of int, changed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.parts) != of {
		w.parts = make([]eventstore.Position, of)
		for i := range w.parts {
			w.parts[i] = w.latest // where a checkpoint read found the slowest
		}
	}
	for _, i := range parts {
		if i >= 0 && i < of && p.Compare(w.parts[i]) > 0 {
			w.parts[i] = p
		}
	}
	slowest := slices.MinFunc(w.parts, eventstore.Position.Compare)
	cmp := slowest.Compare(w.latest)
	if changed || cmp > 0 {
		for _, f := range w.onMoved {
			f(p, changed)
		}
	}
	if cmp > 0 {
		w.latest = slowest
		w.moved.Notify()
	}
}

func (w *Waiter) current() eventstore.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}

// Wait returns once the read model is at or past pos, or a *StaleError (ErrStale) when ctx ends
// first. A zero pos returns at once.
func (w *Waiter) Wait(ctx context.Context, pos eventstore.Position) error {
	if pos.IsZero() {
		return nil
	}
	// The read model's checkpoint is asked when nothing was announced yet, or announcements are
	// late (poll passed without one), or there are none to follow: a query that comes a moment
	// before its position is announced waits for the announcement, not for a read of the
	// checkpoint (which also empties the caches: it says nothing of what changed).
	ask := w.sub == nil || w.current().IsZero()
	for {
		moved := w.moved.C()
		if w.current().Compare(pos) >= 0 {
			return nil
		}
		if ask {
			if cp, err := w.checkpoint(ctx); err == nil {
				w.advance(cp, true) // a checkpoint says nothing of what changed
				if cp.Compare(pos) >= 0 {
					return nil
				}
			} else if ctx.Err() == nil {
				return fmt.Errorf("read %s checkpoint: %w", w.name, err)
			}
		}
		select {
		case <-ctx.Done():
			return &StaleError{Projection: w.name, Wanted: pos, Reached: w.current()}
		case <-moved:
			ask = w.sub == nil
		case <-time.After(w.poll):
			ask = true
		}
	}
}

// WaitFor is the read-your-writes step of a query: it parses min (a position from a command;
// empty means none) and waits at most timeout for the read model, answering the caller's errors
// as *rpc.Error: invalid for a malformed position, stale_read with both positions on timeout.
// A nil Waiter answers at once.
func (w *Waiter) WaitFor(ctx context.Context, min string, timeout time.Duration) error {
	pos, err := eventstore.ParsePosition(min)
	if err != nil {
		return &rpc.Error{Code: rpc.CodeInvalid, Field: "minPosition", Message: err.Error()}
	}
	if pos.IsZero() || w == nil {
		return nil
	}
	if w.current().Compare(pos) >= 0 {
		return nil // there already: no wait to trace
	}
	ctx, span := telemetry.Tracer().Start(ctx, "wait for "+w.name, trace.WithAttributes(attribute.String("orderflow.position", pos.String())))
	defer span.End()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = w.Wait(wctx, pos)
	var stale *StaleError
	if errors.As(err, &stale) {
		span.SetStatus(codes.Error, "stale read")
		span.SetAttributes(attribute.String("orderflow.reached", stale.Reached.String()))
		return &rpc.Error{Code: rpc.CodeStale, Message: stale.Error(), Details: map[string]string{
			"readModel": stale.Projection, "wanted": stale.Wanted.String(), "reached": stale.Reached.String(),
		}}
	}
	return err
}

// ReadModel is what a query service needs to answer "at or past a position": its waiter and how
// long to wait. Query services embed it.
type ReadModel struct {
	// Waiter makes queries with a minimum position wait for the read model; nil answers at once.
	Waiter *Waiter
	// ConsistencyTimeout bounds the wait; default 3s.
	ConsistencyTimeout time.Duration
}

// WaitFor waits as Waiter.WaitFor does, for at most ConsistencyTimeout.
func (r ReadModel) WaitFor(ctx context.Context, min string) error {
	timeout := r.ConsistencyTimeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	return r.Waiter.WaitFor(ctx, min, timeout)
}

// Cache keeps rows of a read model in memory between queries. Each read takes the rows and the
// read model's checkpoint in one snapshot; rows are kept only if no change of the read model is
// known past that checkpoint, and everything goes when a change is announced (or a wait had to
// read the checkpoint, which tells nothing of what changed). Announcements of positions the read
// model moved to without changing its rows (events it ignores) keep the cache.
//
// Why that keeps read-your-writes: a query waits until the announced position reaches the one it
// asks for; announcements come in commit order, so if a change at c came before that, its
// announcement cleared the cache first (the waiter runs the cache's hook before it lets waiting
// queries see the position); if not, the asked position is before c, where the cached rows are
// the read model's state. It pays where reads repeat between writes: products and customers
// behind pages of orders.
type Cache[K comparable, V any] struct {
	mu      sync.Mutex
	changed eventstore.Position // the latest position where the rows are known to have changed
	items   map[K]V
	max     int
}

// NewCache returns a cache of at most max rows (then it starts over) that follows w.
func NewCache[K comparable, V any](w *Waiter, max int) *Cache[K, V] {
	c := &Cache[K, V]{items: map[K]V{}, max: max}
	if w == nil {
		return c
	}
	w.mu.Lock()
	c.changed = w.latest // unknown before: as if changed there
	w.onMoved = append(w.onMoved, c.moved)
	w.mu.Unlock()
	return c
}

func (c *Cache[K, V]) moved(p eventstore.Position, changed bool) {
	if !changed {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.Compare(c.changed) > 0 {
		c.changed = p
	}
	clear(c.items)
}

// Get returns the cached rows of keys, and the keys it has not.
func (c *Cache[K, V]) Get(keys []K) (found []V, missing []K) {
	if c == nil {
		return nil, keys
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if v, ok := c.items[k]; ok {
			found = append(found, v)
		} else {
			missing = append(missing, k)
		}
	}
	return found, missing
}

// Put keeps rows read when the read model's checkpoint was at (unless a change is known past it).
func (c *Cache[K, V]) Put(at eventstore.Position, rows map[K]V) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.Compare(c.changed) < 0 {
		return // read before a known change
	}
	if len(c.items)+len(rows) > c.max {
		clear(c.items)
	}
	for k, v := range rows {
		c.items[k] = v
	}
}
