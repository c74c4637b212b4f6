package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/testkit/natstest"
	"github.com/orderflow/orderflow/wire"
)

// TestServicesListsLiveInstances runs the platform and lists its services through discovery, with
// the request figures of a refused and an accepted command.
func TestServicesListsLiveInstances(t *testing.T) {
	t.Parallel()
	ns := natstest.Namespace(t)
	startPlatform(t, "ORDERFLOW_NATS_PREFIX", string(ns))
	nc, err := nats.Connect(natstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	add := wire.AddProduct{Meta: wire.CommandMeta{CommandID: "a"}, ProductID: "p", SKU: "S", Name: "N", PriceCents: 1}
	if _, err := rpc.Call[wire.CommandReply](asOperator(t), nc, wire.EndpointAddProduct.In(ns), add); err != nil {
		t.Fatal(err)
	}
	add.PriceCents = -1
	if _, err := rpc.Call[wire.CommandReply](asOperator(t), nc, wire.EndpointAddProduct.In(ns), add); err == nil {
		t.Fatal("invalid product accepted")
	}
	env := map[string]string{"NATS_URL": natstest.URL(t), "ORDERFLOW_NATS_PREFIX": string(ns)}
	var out bytes.Buffer
	if err := cli.Main(context.Background(), []string{"services", "--json"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var list []struct {
		Service   string
		Endpoints []struct {
			Name             string
			Requests, Errors int
		}
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	seen := map[string]bool{}
	for _, s := range list {
		seen[s.Service] = true
		for _, e := range s.Endpoints {
			if s.Service == wire.ServiceInventoryCommands && e.Name == "add" && (e.Requests != 2 || e.Errors != 1) {
				t.Errorf("inventory add: %d requests, %d errors; want 2 and 1", e.Requests, e.Errors)
			}
		}
	}
	for _, want := range []string{wire.ServiceOrderCommands, wire.ServiceCustomerCommands, wire.ServiceInventoryCommands, wire.ServicePaymentCommands,
		wire.ServiceOrderQueries, wire.ServiceCatalogQueries, wire.ServiceCustomerQueries} {
		if !seen[want] {
			t.Errorf("services does not list %s: %s", want, out.String())
		}
	}
}
