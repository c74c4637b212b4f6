// Package progress lets a query service answer "at or past position P" (read your writes): it
// follows its projector's NATS progress announcements and, as the source of truth, the
// checkpoint the projector commits with its rows.
package progress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/internal/wire"
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
	moved  eventstore.Signal
	sub    *nats.Subscription
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
			if pos, err := eventstore.ParsePosition(p.Position); err == nil {
				w.advance(pos)
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

func (w *Waiter) advance(p eventstore.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.Compare(w.latest) > 0 {
		w.latest = p
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
	for {
		moved := w.moved.C()
		if w.current().Compare(pos) >= 0 {
			return nil
		}
		if cp, err := w.checkpoint(ctx); err == nil {
			w.advance(cp)
			if cp.Compare(pos) >= 0 {
				return nil
			}
		} else if ctx.Err() == nil {
			return fmt.Errorf("read %s checkpoint: %w", w.name, err)
		}
		select {
		case <-ctx.Done():
			return &StaleError{Projection: w.name, Wanted: pos, Reached: w.current()}
		case <-moved:
		case <-time.After(w.poll):
		}
	}
}

// ReadCheckpoint reads the position projection name has committed in its read model's database
// (table projection_checkpoints, kept by the projector in the same transaction as its rows).
// A projection that has committed nothing is at eventstore.Start.
func ReadCheckpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (eventstore.Position, error) {
	var c, p int64
	err := q.QueryRow(ctx, `select commit_position, prepare_position from projection_checkpoints where name = $1`, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	return eventstore.Position{Commit: uint64(c), Prepare: uint64(p)}, nil
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
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = w.Wait(wctx, pos)
	var stale *StaleError
	if errors.As(err, &stale) {
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
