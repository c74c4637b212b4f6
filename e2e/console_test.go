package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/testkit/pgtest"
)

// chromium is the browser the console test drives: Debian's chromium package (.ci/run installs it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium: apt-get install -y chromium (.ci/run installs it)")
	return ""
}

// TestConsole drives the operator console in headless Chromium against the whole platform: sign
// in with the admin token; open an order's page before the order exists, place it through the API
// and watch it reach CONFIRMED without reloading; pause and resume a projection; rebuild one and
// see its bar reach 100%; at a phone's width nothing overflows; a customer signs in by keyboard
// alone, and its token is offered no operations page and is refused one. Any error in the browser's console fails it. With
// ORDERFLOW_CONSOLE_SCREENSHOTS=DIR it keeps its screenshots there (the README's).
func TestConsole(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	base, db := startPlatformDB(t, "targets", "all", "PAYMENT_PROVIDER_LATENCY", "1ms")
	// The browser talks to the platform through a recorder of its GraphQL operations: the
	// console's contract with the gateway (contracts/console-gateway.json).
	gateway := base
	rec := recordGraphQL(t, gateway)
	base = rec.URL
	shots := os.Getenv("ORDERFLOW_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1280, 800))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	var mu sync.Mutex
	var consoleErrors []string
	if err := chromedp.Listen(browser, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+e.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, a.Description+string(a.Value))
				}
				consoleErrors = append(consoleErrors, "console.error: "+strings.Join(args, " "))
			}
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 2*time.Minute)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitFor := func(what, js string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			if _, err := chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(30*time.Second))(ctx, tg); err != nil {
				text, _ := chromedp.Text("main")(ctx, tg)
				return chromedp.Void{}, fmt.Errorf("waiting for %s: %w; the page says: %s", what, err, text)
			}
			return chromedp.Void{}, nil
		}
	}
	// shot saves the page as a screenshot, once it shows no error: a page's screenshot is its
	// documentation, and an error in it (a refresh of the page before, answered late) a defect.
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			if shown, err := chromedp.Evaluate[string](`document.querySelector("#error").hidden ? "" : document.querySelector("#error").textContent`)(ctx, tg); err != nil || shown != "" {
				return chromedp.Void{}, fmt.Errorf("the %s page shows an error: %q (%v)", name, shown, err)
			}
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		}
	}
	eval := func(js string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	signIn := func(token string) {
		t.Helper()
		run("sign in", chromedp.Navigate(base+"/console#/signin"), chromedp.WaitVisible("#token"),
			chromedp.SetValue("#token", token), chromedp.Click("#signin button"),
			waitFor("the orders page", `location.hash.startsWith("#/orders") && !document.querySelector("#nav").hidden`))
	}

	signIn(tokenFor(t, "test-admin", auth.Admin))
	if s, _, b := call(t, "POST", base+"/api/v1/products", `{"productId":"console-p","sku":"CONSOLE-P","name":"Product","priceCents":1250}`, nil); s != 201 {
		t.Fatalf("add product: %d %s", s, b)
	}
	if s, _, b := call(t, "POST", base+"/api/v1/products/console-p/restock", `{"quantity":5}`, nil); s != 200 {
		t.Fatalf("restock: %d %s", s, b)
	}
	// The order's page is open before the order exists; it must follow it to CONFIRMED by itself.
	run("open the order page", chromedp.Navigate(base+"/console#/order/console-1"), waitFor("the page to wait for the order", `document.querySelector("#order") && /No order/.test(document.querySelector("#order").textContent)`))
	if s, _, b := call(t, "POST", base+"/api/v1/orders", `{"orderId":"console-1","customerId":"c-console","lines":[{"productId":"console-p","quantity":2,"unitPriceCents":1250}]}`, nil); s != 201 {
		t.Fatalf("place: %d %s", s, b)
	}
	run("watch the order", waitFor("CONFIRMED", `document.querySelector("#status") && document.querySelector("#status").textContent === "CONFIRMED"`),
		waitFor("the timeline", `document.querySelectorAll("#order tbody tr").length > 3`), shot("order"))
	run("list orders", chromedp.Navigate(base+"/console#/orders"), waitFor("the order in the list", `/console-1/.test(document.querySelector("#list").textContent)`), shot("orders"))
	run("overview", chromedp.Navigate(base+"/console#/overview"),
		waitFor("the sagas' counts", `document.querySelector("#saga-counts") && /1 confirmed/.test(document.querySelector("#saga-counts").textContent)`),
		waitFor("the breaker", `document.querySelector("#breaker").textContent === "closed"`),
		waitFor("a chart", `document.querySelectorAll(".card polyline").length > 0`), shot("overview"))
	run("sagas", chromedp.Navigate(base+"/console#/sagas"), waitFor("sagas by step", `document.querySelector("#by-step") !== null && /None stuck/.test(document.querySelector("#stuck").textContent)`), shot("sagas"))
	run("services", chromedp.Navigate(base+"/console#/services"),
		waitFor("the services", `document.querySelector('tr[data-service="order-commands"]') !== null && document.querySelector('tr[data-service="gateway"]') === null`), shot("services"))

	row := func(name string) string { return `document.querySelector('tr[data-projection="` + name + `"]')` }
	run("pause and resume", chromedp.Navigate(base+"/console#/projections"), waitFor("the projections", row("orders")+` !== null`),
		chromedp.Click(`tr[data-projection="orders"] button[data-act="pauseProjection"]`),
		waitFor("orders paused", row("orders")+`.querySelector(".state").textContent === "paused"`),
		chromedp.Click(`tr[data-projection="orders"] button[data-act="resumeProjection"]`),
		waitFor("orders running", row("orders")+`.querySelector(".state").textContent === "running"`))
	run("rebuild", chromedp.Click(`tr[data-projection="customers"] button[data-act="rebuildProjection"]`),
		waitFor("the rebuild's bar at 100%", row("customers")+`.querySelector(".rebuild-pct") && `+row("customers")+`.querySelector(".rebuild-pct").textContent === "100%"`),
		// Every partition of each read model has its worker again after the swap, each shown.
		waitFor("every partition held", `["orders", "customers"].every((n) => {
			const r = document.querySelector('tr[data-projection="' + n + '"]');
			return r.textContent.includes("16/16 held") && r.querySelectorAll(".part").length === 16; })`),
		shot("projections"))

	// An event the orders read model cannot apply (a placed order whose id is a number) is parked:
	// the page shows it with its error, and replaying it parks it again.
	store := pgtest.EventStoreAt(t, db, 2)
	if _, err := store.Append(t.Context(), "order-poison", eventstore.NoStream(), []eventstore.EventData{
		{ID: uuid.New(), Type: "order.placed.v1", Data: []byte(`{"orderId":5}`)}}); err != nil {
		t.Fatal(err)
	}
	run("parked events", chromedp.Navigate(base+"/console#/projections"),
		waitFor("the parked event", `document.querySelector('tr[data-projection="orders"] button[data-act="showParked"]') !== null`),
		chromedp.Click(`tr[data-projection="orders"] button[data-act="showParked"]`),
		waitFor("its error", `/order-poison/.test(document.querySelector("#parked").textContent) && document.querySelector("#parked td.bad").textContent.length > 0`),
		chromedp.Click(`#parked button[data-act="replayParkedEvents"]`),
		// The clicked button is disabled at once; the list comes back, re-parked, with a new one.
		waitFor("it parked again", `/order-poison/.test(document.querySelector("#parked").textContent) && document.querySelector('#parked button[data-act="replayParkedEvents"]:not([disabled])') !== null && document.querySelector("#error").hidden`),
		shot("parked"))

	// A phone's width: nothing wider than the screen.
	run("phone width", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/console#/order/console-1"),
		waitFor("the order", `document.querySelector("#status") !== null`), shot("order-phone"))
	overflow := eval(`document.documentElement.scrollWidth > window.innerWidth + 1`)
	run("desktop width", chromedp.EmulateViewport(1280, 800))
	if overflow {
		t.Error("at a phone's width the order page is wider than the screen")
	}

	// A customer's token: no operations pages offered, and the page refuses.
	run("sign out", chromedp.Click("#signout"), waitFor("the sign-in page", `location.hash === "#/signin"`))
	// By keyboard alone: focus on the field, type, Tab to the button, Enter.
	run("sign in by keyboard", chromedp.Navigate(base+"/console#/signin"), chromedp.WaitVisible("#token"), chromedp.Focus("#token"),
		chromedp.KeyEvent(strings.TrimPrefix(tokenFor(t, "c-console", auth.Customer), "Bearer ")), chromedp.KeyEvent("\t"),
		waitFor("the button focused", `document.activeElement === document.querySelector("#signin button")`), chromedp.KeyEvent("\r"),
		waitFor("the orders page", `location.hash.startsWith("#/orders") && !document.querySelector("#nav").hidden`))
	projectionsLinkHidden := eval(`["#/overview", "#/projections", "#/sagas", "#/services"].every((h) => document.querySelector('#nav a[href="' + h + '"]').hidden)`)
	for _, page := range []string{"overview", "projections", "sagas", "services"} {
		run("as a customer: "+page, chromedp.Navigate(base+"/console#/"+page), waitFor("the refusal", `document.querySelector("#denied") !== null`))
	}
	run("as a customer",
		chromedp.Navigate(base+"/console#/order/console-1"), waitFor("the customer's own order", `document.querySelector("#status") !== null`))
	if !projectionsLinkHidden {
		t.Error("a customer is offered the operations pages")
	}

	rec.contract(t, "console", "console-gateway.json")

	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Errorf("the browser's console has errors:\n%s", strings.Join(consoleErrors, "\n"))
	}
}
