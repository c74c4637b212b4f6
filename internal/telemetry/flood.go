package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Quieter logs a warning or an error of one kind (level and message) at most once per Interval.
// The first of a kind is logged at once; the ones that follow within the interval are held back,
// and when the interval ends the latest of them is logged, saying how many it stands for
// ("repeated", itself included); that line starts the next interval. Info and debug pass through.
// A flood of one failure (a database down, a thousand orders of an unknown product) so costs a
// line per interval, not a disk, and each line is at most an interval late: an operator sees the
// count of a flood when it happens, not at its next occurrence, which may be hours later.
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
	last time.Time // when the latest line of this kind was logged
	// held: occurrences since then not logged; latest, the last of them, with what logs it.
	held    int
	latest  slog.Record
	ctx     context.Context
	handler slog.Handler
	timer   *time.Timer
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
			for _, old := range q.state.kinds {
				if old.timer != nil {
					old.timer.Stop()
				}
			}
			clear(q.state.kinds)
		}
		kind = &quietKind{}
		q.state.kinds[k] = kind
	}
	if kind.last.IsZero() || time.Since(kind.last) >= q.Interval && kind.held == 0 {
		kind.last = time.Now()
		q.state.mu.Unlock()
		return q.Handler.Handle(ctx, r)
	}
	kind.held++
	kind.latest, kind.ctx, kind.handler = r.Clone(), context.WithoutCancel(ctx), q.Handler
	if kind.timer == nil {
		kind.timer = time.AfterFunc(time.Until(kind.last.Add(q.Interval)), func() { q.flush(k, kind) })
	}
	q.state.mu.Unlock()
	return nil
}

// flush logs the latest held line of kind, with how many it stands for.
func (q Quieter) flush(k quietKey, kind *quietKind) {
	q.state.mu.Lock()
	if q.state.kinds[k] != kind || kind.held == 0 {
		q.state.mu.Unlock()
		return
	}
	r, ctx, h, n := kind.latest, kind.ctx, kind.handler, kind.held
	kind.held, kind.timer, kind.last, kind.latest, kind.ctx = 0, nil, time.Now(), slog.Record{}, nil
	q.state.mu.Unlock()
	r.AddAttrs(slog.Int("repeated", n))
	_ = h.Handle(ctx, r)
}

func (q Quieter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Quieter{Handler: q.Handler.WithAttrs(attrs), Interval: q.Interval, state: q.state}
}

func (q Quieter) WithGroup(name string) slog.Handler {
	return Quieter{Handler: q.Handler.WithGroup(name), Interval: q.Interval, state: q.state}
}
