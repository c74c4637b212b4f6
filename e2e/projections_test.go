package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/internal/auth"
)

// TestProjectionsCommand runs the CLI against a running platform found through its environment:
// list, status, a blue/green rebuild, parked events.
func TestProjectionsCommand(t *testing.T) {
	t.Parallel()
	base, db := startPlatformDB(t)
	var last string
	for i, c := range []string{"a", "b", "c"} {
		s, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"p`+c+`","customerId":"c","lines":[{"productId":"x","quantity":`+string(rune('1'+i))+`,"unitPriceCents":100}]}`, nil)
		if s != 201 {
			t.Fatalf("place: %d %s", s, b)
		}
		last = answer(t, b)["position"]
	}
	env := map[string]string{"DATABASE_URL": db}
	getenv := func(k string) string { return env[k] }
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := cli.Main(context.Background(), append([]string{"projections"}, args...), getenv, &out, &out); err != nil {
			t.Fatalf("projections %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	a := graphQL(t, base, `{ order(id: "pc") { totalCents lines { quantity } } }`, nil, map[string]string{"X-Consistency-Position": last})
	before := string(a.Data["order"])
	if out := run("list"); !strings.Contains(out, "orders") || !strings.Contains(out, "catalog") || !strings.Contains(out, "customers") || !strings.Contains(out, "fulfillment") {
		t.Fatalf("list:\n%s", out)
	}
	// A read model's status lists its partitions, each with its worker: the one process's.
	if out := run("status", "orders"); strings.Count(out, "\n") != 2+2+16 || strings.Count(out, "-"+strconv.Itoa(os.Getpid())+"-") != 16 {
		t.Fatalf("status of orders: want its line and 16 partitions, each held by this process's worker:\n%s", out)
	}
	if out := run("rebuild", "orders"); !strings.Contains(out, "orders rebuilt") || !strings.Contains(out, "done") {
		t.Fatalf("rebuild:\n%s", out)
	}
	a = graphQL(t, base, `{ order(id: "pc") { totalCents lines { quantity } } }`, nil, map[string]string{"X-Consistency-Position": last})
	if after := string(a.Data["order"]); after != before || len(a.Errors) > 0 {
		t.Fatalf("after the rebuild %s %+v, before %s", after, a.Errors, before)
	}
	if out := run("status", "orders"); !strings.Contains(out, "orders") || strings.Contains(out, "in progress") {
		t.Fatalf("status:\n%s", out)
	}
	if out := run("pause", "catalog"); !strings.Contains(out, "catalog paused") {
		t.Fatalf("pause:\n%s", out)
	}
	if out := run("status", "catalog"); !strings.Contains(out, "paused") {
		t.Fatalf("status of a paused read model:\n%s", out)
	}
	if out := run("resume", "catalog"); !strings.Contains(out, "catalog resumed") {
		t.Fatalf("resume:\n%s", out)
	}
	if out := run("parked", "orders"); !strings.Contains(out, "no parked events") {
		t.Fatalf("parked:\n%s", out)
	}
	var out bytes.Buffer
	if err := cli.Main(context.Background(), []string{"projections", "rebuild", "nope"}, getenv, &out, &out); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Fatalf("unknown read model: %v", err)
	}
}

// TestProjectionOperationsOverGraphQL: an admin lists the projections, pauses and resumes one,
// lists parked events and rebuilds the orders read model through the gateway; a customer may not.
func TestProjectionOperationsOverGraphQL(t *testing.T) {
	t.Parallel()
	base := startPlatform(t)
	status, _, body := call(t, "POST", base+"/api/v1/orders", `{"customerId":"c-1","lines":[{"productId":"sku-1","quantity":1,"unitPriceCents":100}]}`, nil)
	var placed struct{ OrderID, Position string }
	if status != http.StatusCreated || json.Unmarshal(body, &placed) != nil {
		t.Fatalf("place: %d %s", status, body)
	}
	a := graphQL(t, base, `{ projections { name position head lagEvents paused rebuilding parked workers partitions { partition owner epoch } } }`, nil, nil)
	for _, name := range []string{`"orders"`, `"catalog"`, `"customers"`} {
		if !strings.Contains(string(a.Data["projections"]), name) {
			t.Fatalf("projections: %s %+v", a.Data["projections"], a.Errors)
		}
	}
	var listed []struct {
		Workers    int
		Partitions []struct{ Owner *string }
	}
	if err := json.Unmarshal(a.Data["projections"], &listed); err != nil || len(listed) == 0 {
		t.Fatalf("projections: %s %v", a.Data["projections"], err)
	}
	for _, p := range listed {
		if p.Workers != 1 || len(p.Partitions) != 16 || p.Partitions[15].Owner == nil {
			t.Errorf("a read model of one process: %d workers, partitions %+v; want 1 worker holding 16", p.Workers, p.Partitions)
		}
	}
	if a = graphQL(t, base, `mutation { pauseProjection(name: "catalog") { name paused } }`, nil, nil); !strings.Contains(string(a.Data["pauseProjection"]), `"paused":true`) {
		t.Errorf("pause: %s %+v", a.Data["pauseProjection"], a.Errors)
	}
	if a = graphQL(t, base, `mutation { resumeProjection(name: "catalog") { name paused } }`, nil, nil); !strings.Contains(string(a.Data["resumeProjection"]), `"paused":false`) {
		t.Errorf("resume: %s %+v", a.Data["resumeProjection"], a.Errors)
	}
	if a = graphQL(t, base, `{ parkedEvents(projection: "orders") { eventId } }`, nil, nil); len(a.Errors) > 0 || string(a.Data["parkedEvents"]) != "[]" {
		t.Errorf("parked: %s %+v", a.Data["parkedEvents"], a.Errors)
	}
	if a = graphQL(t, base, `mutation { pauseProjection(name: "nope") { name } }`, nil, nil); errorCode(a) != "NOT_FOUND" {
		t.Errorf("pause an unknown projection: %+v", a.Errors)
	}
	customer := map[string]string{"Authorization": tokenFor(t, "c-1", auth.Customer)}
	if a = graphQL(t, base, `{ projections { name } }`, nil, customer); errorCode(a) != "FORBIDDEN" {
		t.Errorf("a customer lists projections: %+v", a.Errors)
	}
	if a = graphQL(t, base, `mutation { rebuildProjection(name: "orders") { name } }`, nil, customer); errorCode(a) != "FORBIDDEN" {
		t.Errorf("a customer rebuilds: %+v", a.Errors)
	}
	// A rebuild started over GraphQL runs to done; a second one meanwhile is a conflict.
	a = graphQL(t, base, `mutation { rebuildProjection(name: "orders") { name rebuild { phase } } }`, nil, nil)
	if len(a.Errors) > 0 {
		t.Fatalf("rebuild: %+v", a.Errors)
	}
	if again := graphQL(t, base, `mutation { rebuildProjection(name: "orders") { name } }`, nil, nil); errorCode(again) != "CONFLICT" {
		t.Errorf("a second rebuild meanwhile: %+v", again.Errors)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a = graphQL(t, base, `{ projections { name rebuild { phase error } } }`, nil, nil)
		if strings.Contains(string(a.Data["projections"]), `"phase":"done"`) {
			break
		}
		if strings.Contains(string(a.Data["projections"]), `"phase":"failed"`) || time.Now().After(deadline) {
			t.Fatalf("rebuild: %s %+v", a.Data["projections"], a.Errors)
		}
	}
	if o := readOrder(t, base, placed.OrderID, placed.Position); o.CustomerID != "c-1" {
		t.Errorf("after the rebuild: %+v", o)
	}
}
