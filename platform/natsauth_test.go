package platform

import (
	"slices"
	"testing"

	"github.com/orderflow/orderflow/gateway/api"
	"github.com/orderflow/orderflow/wire"
)

// TestPermissionsFollowTheEndpoints: the permissions are derived from the endpoints: each
// endpoint of the wire is served by exactly one identity; the gateway may send every command of
// the edge and none that only the saga queues or only services ask; the order service may ask
// the catalog and the customers; the projector announces each read model it runs.
func TestPermissionsFollowTheEndpoints(t *testing.T) {
	ns := wire.Namespace("perm")
	publish, subscribe := map[string][]string{}, map[string][]string{}
	for _, id := range Identities() {
		publish[id], subscribe[id], _ = Permissions(id, ns)
	}
	routes := wire.Routes()
	if len(routes) < 40 {
		t.Fatalf("%d routes in the wire: every endpoint must be declared with endpoint()", len(routes))
	}
	for _, r := range routes {
		var servers []string
		for id, subs := range subscribe {
			if slices.Contains(subs, ns.Subject(r.Name)) {
				servers = append(servers, id)
			}
		}
		if len(servers) != 1 {
			t.Errorf("%s (%s) is served by %v, want exactly one identity", r.Name, r.Service, servers)
		}
	}
	for _, c := range api.Commands {
		if !slices.Contains(publish["gateway"], ns.Subject(c.SendsTo())) {
			t.Errorf("the gateway may not send %s", c.SendsTo())
		}
	}
	for _, r := range []wire.Route{wire.EndpointConfirmOrder.Route(), wire.EndpointReserveStock.Route(), wire.EndpointReleaseStock.Route(),
		wire.EndpointAuthorizePayment.Route(), wire.EndpointVoidPayment.Route(), wire.EndpointQuoteProducts.Route(), wire.EndpointCustomerStanding.Route()} {
		if slices.Contains(publish["gateway"], ns.Subject(r.Name)) {
			t.Errorf("the gateway may send %s, which only the saga queues or only services ask", r.Name)
		}
	}
	for _, e := range []string{wire.EndpointQuoteProducts.Name, wire.EndpointCustomerStanding.Name} {
		if !slices.Contains(publish["order-commands"], ns.Subject(e)) {
			t.Errorf("order-commands may not ask %s", e)
		}
	}
	for _, rm := range ReadModels {
		if !slices.Contains(publish["projector"], ns.Progress(rm.Name())) {
			t.Errorf("the projector may not announce %s's progress", rm.Name())
		}
	}
}
