package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
	"github.com/orderflow/orderflow/projections"
)

// projectionOps is the projections service of the projector target: the figures and operations
// of `orderflow projections`, over NATS, for the gateway's admin fields. A rebuild it starts runs
// in this process, in the background; its progress is kept here.
type projectionOps struct {
	ctx   context.Context // the service's lifetime: rebuilds stop with it
	cfg   Config
	store eventstore.Store
	head  func(context.Context) (eventstore.Position, error)
	pools map[string]*pgxpool.Pool // the read models' pools the projector target opened
	log   *slog.Logger

	mu       sync.Mutex
	rebuilds map[string]*wire.RebuildStatus
}

func registerProjectionOps(ctx context.Context, nc *nats.Conn, o *projectionOps) error {
	o.rebuilds = map[string]*wire.RebuildStatus{}
	srv := rpc.NewServer(ctx, nc, o.log.With("service", wire.ServiceProjections), 8, 30*time.Second, pgerr.Classify(nil))
	ns := o.cfg.NATSNamespace
	_, err := rpc.Serve(ctx, srv, micro.Config{Name: wire.ServiceProjections, Version: "0.1.0", Description: "read models' projections: figures, pause, resume, parked events, rebuilds"},
		rpc.Endpoint{Name: "list", Subject: ns.Subject(wire.EndpointProjectionsList), Handler: rpc.Handle(srv, "list", o.list)},
		rpc.Endpoint{Name: "pause", Subject: ns.Subject(wire.EndpointProjectionPause), Handler: rpc.Handle(srv, "pause", o.pause(true))},
		rpc.Endpoint{Name: "resume", Subject: ns.Subject(wire.EndpointProjectionResume), Handler: rpc.Handle(srv, "resume", o.pause(false))},
		rpc.Endpoint{Name: "parked", Subject: ns.Subject(wire.EndpointProjectionParked), Handler: rpc.Handle(srv, "parked", o.parked)},
		rpc.Endpoint{Name: "replay_parked", Subject: ns.Subject(wire.EndpointProjectionReplay), Handler: rpc.Handle(srv, "replay_parked", o.replay)},
		rpc.Endpoint{Name: "rebuild", Subject: ns.Subject(wire.EndpointProjectionRebuild), Handler: rpc.Handle(srv, "rebuild", o.rebuild)},
	)
	return err
}

// readModel returns the read model name and its pool.
func (o *projectionOps) readModel(name string) (readModel, *pgxpool.Pool, error) {
	rm, err := lookup(name)
	pool := o.pools[name]
	if err != nil || pool == nil {
		return readModel{}, nil, &rpc.Error{Code: rpc.CodeNotFound, Field: "name", Message: fmt.Sprintf("no read model %q", name)}
	}
	return rm, pool, nil
}

func (o *projectionOps) list(ctx context.Context, _ struct{}) ([]wire.ProjectionStatus, error) {
	return o.figures(ctx, "")
}

func (o *projectionOps) figures(ctx context.Context, only string) ([]wire.ProjectionStatus, error) {
	list, err := projectionFigures(ctx, o.cfg, only)
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

func (o *projectionOps) one(ctx context.Context, name string) (wire.ProjectionStatus, error) {
	list, err := o.figures(ctx, name)
	if err != nil || len(list) == 0 {
		return wire.ProjectionStatus{}, err
	}
	return list[0], nil
}

func (o *projectionOps) pause(paused bool) func(context.Context, wire.ProjectionName) (wire.ProjectionStatus, error) {
	return func(ctx context.Context, req wire.ProjectionName) (wire.ProjectionStatus, error) {
		_, pool, err := o.readModel(req.Name)
		if err != nil {
			return wire.ProjectionStatus{}, err
		}
		if err := projections.SetPaused(ctx, pool, req.Name, paused); err != nil {
			return wire.ProjectionStatus{}, err
		}
		return o.one(ctx, req.Name)
	}
}

func (o *projectionOps) parked(ctx context.Context, req wire.ProjectionName) ([]wire.ParkedEvent, error) {
	_, pool, err := o.readModel(req.Name)
	if err != nil {
		return nil, err
	}
	list, err := projections.ListParked(ctx, pool, req.Name)
	out := make([]wire.ParkedEvent, 0, len(list))
	for _, p := range list {
		out = append(out, wire.ParkedEvent{EventID: p.EventID, Stream: p.Stream, Type: p.Type, Position: p.Position, Error: p.Error, Attempts: int64(p.Attempts), ParkedAt: p.ParkedAt})
	}
	return out, err
}

func (o *projectionOps) replay(ctx context.Context, req wire.ProjectionName) (wire.ReplayResult, error) {
	rm, pool, err := o.readModel(req.Name)
	if err != nil {
		return wire.ReplayResult{}, err
	}
	n, err := projections.ReplayParked(ctx, o.store, pool, rm.projection)
	return wire.ReplayResult{Applied: int64(n)}, err
}

// rebuild starts a rebuild in the background and answers with the projection's figures once it
// runs (or with the reason it could not start: another rebuild holds the lock).
func (o *projectionOps) rebuild(ctx context.Context, req wire.ProjectionName) (wire.ProjectionStatus, error) {
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
		err := rebuildReadModel(o.ctx, o.store, o.head, rm.url(o.cfg), req.Name, rm.projection, 0, func(p projections.RebuildProgress) {
			o.mu.Lock()
			defer o.mu.Unlock()
			status.Phase, status.Done, status.Total, status.Rate, status.ETASeconds = p.Phase, p.Done, p.Total, p.Rate, p.ETA.Seconds()
		})
		o.mu.Lock()
		switch {
		case errors.Is(err, projections.ErrRebuildRunning):
			o.rebuilds[req.Name] = prev // refused: the running one's progress stays
		case err != nil:
			status.Phase, status.Error = "failed", err.Error()
			o.log.Error("rebuild failed", "projection", req.Name, "err", err)
		default:
			status.Phase = "done"
		}
		o.mu.Unlock()
		ended <- err
	}()
	select {
	case err := <-ended:
		if errors.Is(err, projections.ErrRebuildRunning) {
			return wire.ProjectionStatus{}, rpc.Errorf(rpc.CodeConflict, "a rebuild of %s is already running elsewhere", req.Name)
		}
		if err != nil {
			return wire.ProjectionStatus{}, err
		}
	case <-time.After(300 * time.Millisecond): // started: the lock is held, the replay runs
	}
	return o.one(ctx, req.Name)
}
