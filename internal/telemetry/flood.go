package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Quieter logs a warning or an error of one kind (level and message) at most once per Interval:
// repeats within it are counted, and the next line of that kind after it says how many there
// were ("repeated"). Info and debug pass through. A flood of one failure (a database down, a
// thousand orders of an unknown product) so costs a line per interval, not a disk.
type Quieter struct {
	slog.Handler
	Interval time.Duration
	state    *quietState
}

type quietState struct {
	mu    sync.Mutex
	kinds map[quietKey]*quietKind
}

type quietKey struct {
	level slog.Level
	msg   string
}

type quietKind struct {
	last       time.Time
	suppressed int
}

// NewQuieter returns a Quieter over h.
func NewQuieter(h slog.Handler, interval time.Duration) Quieter {
	return Quieter{Handler: h, Interval: interval, state: &quietState{kinds: map[quietKey]*quietKind{}}}
}

// Handle implements slog.Handler.
func (q Quieter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return q.Handler.Handle(ctx, r)
	}
	q.state.mu.Lock()
	k := quietKey{r.Level, r.Message}
	kind := q.state.kinds[k]
	if kind == nil {
		if len(q.state.kinds) > 10_000 { // bounded: forget every kind rather than grow
			clear(q.state.kinds)
		}
		kind = &quietKind{}
		q.state.kinds[k] = kind
	}
	if !kind.last.IsZero() && r.Time.Sub(kind.last) < q.Interval {
		kind.suppressed++
		q.state.mu.Unlock()
		return nil
	}
	suppressed := kind.suppressed
	kind.last, kind.suppressed = r.Time, 0
	q.state.mu.Unlock()
	if suppressed > 0 {
		r.AddAttrs(slog.Int("repeated", suppressed))
	}
	return q.Handler.Handle(ctx, r)
}

func (q Quieter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Quieter{Handler: q.Handler.WithAttrs(attrs), Interval: q.Interval, state: q.state}
}

func (q Quieter) WithGroup(name string) slog.Handler {
	return Quieter{Handler: q.Handler.WithGroup(name), Interval: q.Interval, state: q.state}
}
