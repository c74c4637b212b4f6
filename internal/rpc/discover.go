package rpc

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/wire"
)

// Instance is one running instance of a service, as NATS micro discovery tells it.
type Instance struct {
	Service, ID, Version string
	Started              time.Time
	Endpoints            []InstanceEndpoint
}

// InstanceEndpoint is one endpoint of an instance, with its figures since the instance started.
type InstanceEndpoint struct {
	Name, Subject         string
	Requests, Errors      int
	AverageProcessingTime time.Duration
}

// Discover lists the instances of the services of namespace ns that answer discovery ($SRV.INFO,
// $SRV.STATS) within wait, by service and id.
func Discover(ctx context.Context, nc *nats.Conn, ns wire.Namespace, wait time.Duration) ([]Instance, error) {
	infos, err := collect[micro.Info](ctx, nc, "$SRV.INFO", wait)
	if err != nil {
		return nil, err
	}
	stats, err := collect[micro.Stats](ctx, nc, "$SRV.STATS", wait)
	if err != nil {
		return nil, err
	}
	byID := map[string]micro.Stats{}
	for _, s := range stats {
		byID[s.ID] = s
	}
	out := []Instance{}
	prefix := ns.Subject("")
	for _, info := range infos {
		in := Instance{Service: info.Name, ID: info.ID, Version: info.Version, Started: byID[info.ID].Started}
		mine := false
		for _, e := range info.Endpoints {
			mine = mine || strings.HasPrefix(e.Subject, prefix)
			ep := InstanceEndpoint{Name: e.Name, Subject: e.Subject}
			for _, es := range byID[info.ID].Endpoints {
				if es.Name != e.Name {
					continue
				}
				// The service's own figures (EndpointStats) when it publishes them: micro's cannot
				// see handlers that answer from their own goroutines.
				var own EndpointStats
				if json.Unmarshal(es.Data, &own) == nil && own.Requests > 0 {
					ep.Requests, ep.Errors, ep.AverageProcessingTime = int(own.Requests), int(own.Errors), time.Duration(own.AverageMs*float64(time.Millisecond))
				} else {
					ep.Requests, ep.Errors, ep.AverageProcessingTime = es.NumRequests, es.NumErrors, es.AverageProcessingTime
				}
			}
			in.Endpoints = append(in.Endpoints, ep)
		}
		if mine {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Service < out[j].Service || out[i].Service == out[j].Service && out[i].ID < out[j].ID
	})
	return out, nil
}

// collect sends one discovery request and gathers every answer that arrives within wait.
func collect[T any](ctx context.Context, nc *nats.Conn, subject string, wait time.Duration) ([]T, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, err
	}
	var out []T
	deadline := time.Now().Add(wait)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil || ctx.Err() != nil {
			return out, nil // the window closed
		}
		var v T
		if json.Unmarshal(msg.Data, &v) == nil {
			out = append(out, v)
		}
	}
}
