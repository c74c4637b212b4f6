package inventory

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/wire"
)

// Router makes one instance of the inventory service the writer of each product stream when
// several run: the owner of a product is the live instance that ranks first for it by rendezvous
// hashing (highest hash of product and instance id), so every instance computes the same owner and
// a departing instance moves only its own products. Instances find each other with NATS micro's
// PING of the service, every RefreshEvery (instances of another namespace on the same NATS are not
// peers). A product's reservations, releases and commits are
// carried out by its owner: the others forward them over NATS (wire.EndpointRouteStock plus the
// owner's id). While the membership changes two instances may both think they own a product;
// that costs conflicts, never correctness: every append carries its expected revision.
type Router struct {
	nc  *nats.Conn
	ns  wire.Namespace
	log *slog.Logger

	mu    sync.RWMutex
	self  string
	peers []string // live instance ids, sorted, self included
}

// RefreshEvery is how often a Router looks for the service's instances.
const RefreshEvery = 2 * time.Second

// NewRouter returns a Router of the instance self (its NATS micro id) that has not looked yet:
// it owns everything until Refresh finds others.
func NewRouter(nc *nats.Conn, ns wire.Namespace, log *slog.Logger) *Router {
	return &Router{nc: nc, ns: ns, log: log}
}

// Owner returns the instance that writes product's stream, and whether it is another one.
func (r *Router) Owner(product string) (string, bool) {
	if r == nil {
		return "", false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	best, top := "", uint64(0)
	for _, id := range r.peers {
		h := fnv.New64a()
		h.Write([]byte(product))
		h.Write([]byte{0})
		h.Write([]byte(id))
		if v := h.Sum64(); best == "" || v > top {
			best, top = id, v
		}
	}
	return best, best != "" && best != r.self
}

// subject is where instance id takes forwarded stock commands.
func (r *Router) subject(id string) string { return r.ns.Subject(wire.EndpointRouteStock + "." + id) }

// Refresh asks the service's instances to say who they are (answers within 200 ms count).
func (r *Router) Refresh(ctx context.Context) error {
	subject, err := micro.ControlSubject(micro.PingVerb, wire.ServiceInventoryCommands, "")
	if err != nil {
		return err
	}
	inbox := r.nc.NewRespInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe() //nolint:errcheck
	if err := r.nc.PublishRequest(subject, inbox, nil); err != nil {
		return err
	}
	r.mu.RLock()
	ids := []string{r.self}
	r.mu.RUnlock()
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break // the deadline: these are the answers
		}
		var ping micro.Ping
		if json.Unmarshal(msg.Data, &ping) == nil && ping.ID != "" && ping.Metadata["namespace"] == string(r.ns) && !slices.Contains(ids, ping.ID) {
			ids = append(ids, ping.ID)
		}
	}
	slices.Sort(ids)
	r.mu.Lock()
	changed := !slices.Equal(ids, r.peers)
	r.peers = ids
	r.mu.Unlock()
	if changed {
		r.log.Info("inventory instances", "instances", len(ids))
	}
	return ctx.Err()
}

// run refreshes until ctx ends.
func (r *Router) run(ctx context.Context) {
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("find inventory instances", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(RefreshEvery):
		}
	}
}

// Peers is what the Router knows of the service's instances.
func (r *Router) Peers() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.peers)
}
