package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/target"
	"github.com/orderflow/orderflow/wire"
)

// Target is the projector target: it runs the projection of each read model into its own
// database (schema of the projection's name), and the projections service (figures, pause,
// resume, parked events, rebuilds over NATS, for the gateway's admin fields and the console).
func Target(readModels ...Projection) target.Target {
	t := target.Target{Name: "projector", EventStoreConns: 4}
	for _, rm := range readModels {
		t.Databases = append(t.Databases, target.Database{Schema: rm.Name(), Conns: 3})
	}
	t.Start = func(ctx context.Context, d target.Deps, p *target.Process) error {
		metrics := SharedMetrics(p, d)
		ops := &operations{ctx: ctx, d: d, readModels: map[string]Projection{}}
		for _, rm := range readModels {
			ops.readModels[rm.Name()] = rm
			pr := New(d.Store, d.Pool(rm.Name()), rm, Options{Log: d.Log, Publish: PublishJSON(d.NC.Publish, d.Namespace.Progress(rm.Name())), Metrics: metrics})
			metrics.Watch(pr, d.Head)
			if err := pr.Migrate(ctx); err != nil {
				return err
			}
			p.Go(ctx, func(ctx context.Context) { _ = pr.Run(ctx) })
			p.Check(func(context.Context) error { return pr.Health() })
		}
		if err := ops.register(ctx); err != nil {
			return fmt.Errorf("projections service: %w", err)
		}
		return nil
	}
	return t
}

type metricsKey struct{}

// SharedMetrics are the projection metrics of a process: every projector of it (read models, sagas)
// reports to one set.
func SharedMetrics(p *target.Process, d target.Deps) *Metrics {
	return target.Share(p, metricsKey{}, func() *Metrics { return NewMetrics(d.Metrics) })
}

// Statuses reads each read model's checkpoint, control and parked rows in its database
// (dbURL(name)), and its lag behind the head of the log when the event store is PostgreSQL
// (eventsURL, connected to once; for EventStoreDB the lag is not counted).
func Statuses(ctx context.Context, eventsURL string, names []string, dbURL func(name string) string) ([]wire.ProjectionStatus, error) {
	var es *pgx.Conn
	head := "unknown (EventStoreDB)"
	if strings.HasPrefix(eventsURL, "postgres://") || strings.HasPrefix(eventsURL, "postgresql://") {
		var err error
		if es, err = pgx.Connect(ctx, eventsURL); err != nil {
			return nil, err
		}
		defer es.Close(context.Background())
		var gp int64
		if err := es.QueryRow(ctx, `select coalesce(max(global_position), 0) from eventstore.events`).Scan(&gp); err != nil {
			return nil, fmt.Errorf("head of the log: %w", err)
		}
		head = fmt.Sprint(gp)
	}
	out := make([]wire.ProjectionStatus, 0, len(names))
	for _, name := range names {
		st, err := status(ctx, es, head, dbURL(name), name)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// status is one read model's figures; es is the event store (nil: not PostgreSQL).
func status(ctx context.Context, es *pgx.Conn, head, dbURL, name string) (wire.ProjectionStatus, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return wire.ProjectionStatus{}, err
	}
	defer conn.Close(context.Background())
	st := wire.ProjectionStatus{Name: name, Head: head, Position: "0-0"}
	table := func(t string) string { return pgx.Identifier{name, t}.Sanitize() }
	if _, err := conn.Exec(ctx, `select set_config('search_path', $1, false)`, name); err != nil {
		return wire.ProjectionStatus{}, err
	}
	parts, err := ReadPartitions(ctx, conn, name)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return st, nil // its target never ran against this database: no partitions, at the start
	}
	if err != nil {
		return wire.ProjectionStatus{}, fmt.Errorf("%s checkpoint: %w", name, err)
	}
	c, p := partitionsStatus(&st, parts)
	if es != nil {
		var oldest *time.Time
		if es.QueryRow(ctx, `select count(*), min(recorded_at) from eventstore.events where (tx_id, global_position) > ($1::text::xid8, $2)`, fmt.Sprint(c), p).Scan(&st.LagEvents, &oldest) == nil && oldest != nil {
			st.LagSeconds = time.Since(*oldest).Seconds()
		}
	}
	_ = conn.QueryRow(ctx, `select exists (select 1 from pg_namespace where nspname = $1)`, name+"_rebuild").Scan(&st.Rebuilding)
	_ = conn.QueryRow(ctx, `select coalesce((select paused from `+table("projection_control")+` where name = $1), false)`, name).Scan(&st.Paused)
	_ = conn.QueryRow(ctx, `select count(*) from `+table("projection_parked")+` where name = $1`, name).Scan(&st.Parked)
	return st, nil
}

// partitionsStatus fills st's partitions, workers and position (the slowest partition's), and
// answers that position's commit and prepare parts.
func partitionsStatus(st *wire.ProjectionStatus, parts []PartitionStatus) (commit, prepare int64) {
	head, _ := strconv.ParseInt(st.Head, 10, 64)
	owners := map[string]bool{}
	st.Partitions = make([]wire.PartitionStatus, 0, len(parts))
	var slowest *PartitionStatus
	for i, pt := range parts {
		lag := int64(0)
		if pt.Position.Prepare > 0 && head > int64(pt.Position.Prepare) {
			lag = head - int64(pt.Position.Prepare)
		}
		st.Partitions = append(st.Partitions, wire.PartitionStatus{Partition: int64(pt.Part), Position: pt.Position.String(), Lag: lag, Owner: pt.Owner, Epoch: pt.Epoch, UpdatedAt: pt.UpdatedAt})
		if pt.Owner != "" {
			owners[pt.Owner] = true
		}
		if slowest == nil || pt.Position.Compare(slowest.Position) < 0 {
			slowest = &parts[i]
		}
	}
	st.Workers = int64(len(owners))
	if slowest == nil {
		return 0, 0
	}
	st.Position, st.UpdatedAt = slowest.Position.String(), &slowest.UpdatedAt
	return int64(slowest.Position.Commit), int64(slowest.Position.Prepare)
}

// operations is the projections service of the projector target: the figures and operations
// of `orderflow projections`, over NATS, for the gateway's admin fields. A rebuild it starts runs
// in this process, in the background; its progress is kept here.
type operations struct {
	ctx        context.Context // the service's lifetime: rebuilds stop with it
	d          target.Deps
	readModels map[string]Projection

	mu       sync.Mutex
	rebuilds map[string]*wire.RebuildStatus
}

func (o *operations) register(ctx context.Context) error {
	o.rebuilds = map[string]*wire.RebuildStatus{}
	svc := rpc.Service{Name: wire.ServiceProjections, Description: "read models' projections: figures, pause, resume, parked events, rebuilds",
		Namespace: o.d.Namespace, Limits: rpc.OperationLimits, Classify: pgerr.Classify(nil)}
	_, err := svc.Serve(ctx, o.d.NC, o.d.Log,
		rpc.Staff(rpc.On("list", wire.EndpointProjectionsList, o.list)),
		rpc.Staff(rpc.On("pause", wire.EndpointProjectionPause, o.pause(true))),
		rpc.Staff(rpc.On("resume", wire.EndpointProjectionResume, o.pause(false))),
		rpc.Staff(rpc.On("parked", wire.EndpointProjectionParked, o.parked)),
		rpc.Staff(rpc.On("replay_parked", wire.EndpointProjectionReplay, o.replay)),
		rpc.Staff(rpc.On("rebuild", wire.EndpointProjectionRebuild, o.rebuild)),
	)
	return err
}

// readModel returns the read model's projection and its pool.
func (o *operations) readModel(name string) (Projection, *pgxpool.Pool, error) {
	p, ok := o.readModels[name]
	if !ok {
		return nil, nil, &rpc.Error{Code: rpc.CodeNotFound, Field: "name", Message: fmt.Sprintf("no read model %q", name)}
	}
	return p, o.d.Pool(name), nil
}

func (o *operations) list(ctx context.Context, _ struct{}) ([]wire.ProjectionStatus, error) {
	return o.figures(ctx, "")
}

func (o *operations) figures(ctx context.Context, only string) ([]wire.ProjectionStatus, error) {
	var names []string
	for name := range o.readModels {
		if only == "" || name == only {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	list, err := Statuses(ctx, o.d.EventStoreURL, names, o.d.DatabaseURL)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range list {
		if r := o.rebuilds[list[i].Name]; r != nil {
			copied := *r
			list[i].Rebuild = &copied
		}
	}
	return list, nil
}

func (o *operations) one(ctx context.Context, name string) (wire.ProjectionStatus, error) {
	list, err := o.figures(ctx, name)
	if err != nil || len(list) == 0 {
		return wire.ProjectionStatus{}, err
	}
	return list[0], nil
}

func (o *operations) pause(paused bool) func(context.Context, wire.ProjectionName) (wire.ProjectionStatus, error) {
	return func(ctx context.Context, req wire.ProjectionName) (wire.ProjectionStatus, error) {
		_, pool, err := o.readModel(req.Name)
		if err != nil {
			return wire.ProjectionStatus{}, err
		}
		if err := SetPaused(ctx, pool, req.Name, paused); err != nil {
			return wire.ProjectionStatus{}, err
		}
		return o.one(ctx, req.Name)
	}
}

func (o *operations) parked(ctx context.Context, req wire.ProjectionName) ([]wire.ParkedEvent, error) {
	_, pool, err := o.readModel(req.Name)
	if err != nil {
		return nil, err
	}
	list, err := ListParked(ctx, pool, req.Name)
	out := make([]wire.ParkedEvent, 0, len(list))
	for _, p := range list {
		out = append(out, wire.ParkedEvent{EventID: p.EventID, Stream: p.Stream, Type: p.Type, Position: p.Position, Error: p.Error, Attempts: int64(p.Attempts), ParkedAt: p.ParkedAt})
	}
	return out, err
}

func (o *operations) replay(ctx context.Context, req wire.ProjectionName) (wire.ReplayResult, error) {
	rm, pool, err := o.readModel(req.Name)
	if err != nil {
		return wire.ReplayResult{}, err
	}
	n, err := ReplayParked(ctx, o.d.Store, pool, rm)
	return wire.ReplayResult{Applied: int64(n)}, err
}

// rebuild starts a rebuild in the background and answers with the projection's figures once it
// runs (or with the reason it could not start: another rebuild holds the lock).
func (o *operations) rebuild(ctx context.Context, req wire.ProjectionName) (wire.ProjectionStatus, error) {
	rm, _, err := o.readModel(req.Name)
	if err != nil {
		return wire.ProjectionStatus{}, err
	}
	o.mu.Lock()
	if r := o.rebuilds[req.Name]; r != nil && r.Phase != "done" && r.Phase != "failed" {
		o.mu.Unlock()
		return wire.ProjectionStatus{}, rpc.Errorf(rpc.CodeConflict, "a rebuild of %s is already running (%s)", req.Name, r.Phase)
	}
	prev := o.rebuilds[req.Name]
	status := &wire.RebuildStatus{Phase: "starting", StartedAt: time.Now().UTC()}
	o.rebuilds[req.Name] = status
	o.mu.Unlock()
	ended := make(chan error, 1)
	go func() {
		err := Rebuild(o.ctx, o.d.Store, o.d.DatabaseURL(req.Name), rm, RebuildOptions{Head: o.d.Head, Progress: func(p RebuildProgress) {
			o.mu.Lock()
			defer o.mu.Unlock()
			status.Phase, status.Done, status.Total, status.Rate, status.ETASeconds = p.Phase, p.Done, p.Total, p.Rate, p.ETA.Seconds()
		}})
		o.mu.Lock()
		switch {
		case errors.Is(err, ErrRebuildRunning):
			o.rebuilds[req.Name] = prev // refused: the running one's progress stays
		case err != nil:
			status.Phase, status.Error = "failed", err.Error()
			o.d.Log.Error("rebuild failed", "projection", req.Name, "err", err)
		default:
			status.Phase = "done"
		}
		o.mu.Unlock()
		ended <- err
	}()
	select {
	case err := <-ended:
		if errors.Is(err, ErrRebuildRunning) {
			return wire.ProjectionStatus{}, rpc.Errorf(rpc.CodeConflict, "a rebuild of %s is already running elsewhere", req.Name)
		}
		if err != nil {
			return wire.ProjectionStatus{}, err
		}
	case <-time.After(300 * time.Millisecond): // started: the lock is held, the replay runs
	}
	return o.one(ctx, req.Name)
}
