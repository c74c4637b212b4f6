package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
		if err := projectionsCmd(context.Background(), args, getenv, &out, &out); err != nil {
			t.Fatalf("projections %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	a := graphQL(t, base, `{ order(id: "pc") { totalCents lines { quantity } } }`, nil, map[string]string{"X-Consistency-Position": last})
	before := string(a.Data["order"])
	if out := run("list"); !strings.Contains(out, "orders") || !strings.Contains(out, "catalog") || !strings.Contains(out, "customers") {
		t.Fatalf("list:\n%s", out)
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
	if err := projectionsCmd(context.Background(), []string{"rebuild", "nope"}, getenv, &out, &out); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Fatalf("unknown read model: %v", err)
	}
}
