// Package chaos runs orderflow as it runs in production, every target its own process, under an
// open-loop load, and breaks it: kill -9 of each target in turn, a kill -9 of PostgreSQL, a NATS
// restart. Then it checks what an operator of a payment-adjacent system demands: every
// acknowledged order is in the log once and in the read model, every saga is final (none stuck),
// stock is exact (reservations are the confirmed orders' units, the catalog agrees with the log),
// nothing is parked, and every read model reaches the head of the log. It prints a table of the
// faults.
//
// Targets run as two processes each where a real deployment runs several, so that every answer
// must be the one a single instance gives: `make chaos` (ORDERFLOW_CHAOS=full) runs two of every
// target and three of the partitioned workers (projector, saga), kills each instance of each in
// turn, then freezes each worker (SIGSTOP for 45 s, then SIGCONT) and an instance of two command
// services, under a heavier load; `go test ./chaos/` (part of `make test`) runs two of the
// command services, the workers and the gateway (one of the rest), kills one target of each kind
// and freezes a projector, a saga worker and a command service for 8 s. A frozen worker's
// partitions go to the others, and what it still had in hand commits nothing (fencing); a frozen
// service's requests are answered by the other instance. Besides the checks below, no effect is
// carried out twice (one reservation per order and product, one authorization per payment) and
// no order's row in the read model goes backwards while it runs. After the load, the same checks ask the two instances about one
// thing each: a restock through one and a reservation through the other, a deactivation and an
// order, a price change and an order, one idempotency key and a read of one's own write across
// the two gateways.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	registry "github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/wire"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/dev/natsrv"
	"github.com/orderflow/orderflow/dev/pgcluster"
	"github.com/orderflow/orderflow/domain/inventory"
	"github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/domain/payment"
	"github.com/orderflow/orderflow/internal/auth"
)

const secret = "orderflow-chaos-secret-0123456789abcdef"

// schedule is what a run does: the load and the faults, in order.
type schedule struct {
	rate     int           // orders per second, open loop
	down     time.Duration // how long a killed target stays down
	settle   time.Duration // load between faults
	faults   []string      // instances ("gateway#2") killed, "freeze:<instance>" stopped, "postgres" or "nats"
	freeze   time.Duration // how long a frozen (SIGSTOP) instance stays stopped before SIGCONT
	products int
	// twice are the targets run as two processes, thrice as three (the others: one).
	twice, thrice []string
}

// workers are the targets whose work is partitioned among their processes: run as three, killed
// and frozen in turn.
var workers = []string{"projector", "fulfillment-saga"}

func plan() schedule {
	if os.Getenv("ORDERFLOW_CHAOS") == "full" {
		var faults []string
		for n := 1; n <= 2; n++ { // every instance of every target, then the database and the broker
			for _, name := range registry.TargetNames() {
				faults = append(faults, instanceName(name, n))
			}
			faults = append(faults, "postgres", "nats")
		}
		for n := 1; n <= 3; n++ { // each worker frozen in turn, then a command service's instance
			for _, w := range workers {
				faults = append(faults, "freeze:"+instanceName(w, n))
			}
		}
		faults = append(faults, "freeze:order-commands#1", "freeze:inventory-commands#2")
		return schedule{rate: 50, down: 2 * time.Second, settle: 3 * time.Second, freeze: 45 * time.Second, faults: faults, products: 5,
			twice: registry.TargetNames(), thrice: workers}
	}
	// One kill of each kind: a command service, the projector, the saga, a query service, the
	// gateway, the database, the broker; a freeze of a worker of each kind and of a command service.
	return schedule{rate: 20, down: time.Second, settle: 2 * time.Second, freeze: 8 * time.Second, products: 3,
		faults: []string{"inventory-commands#1", "projector#1", "fulfillment-saga#1", "order-queries#1", "gateway#1", "postgres", "nats",
			"freeze:projector#2", "freeze:fulfillment-saga#1", "freeze:order-commands#1"},
		twice: []string{"order-commands", "customer-commands", "inventory-commands", "gateway", "projector", "fulfillment-saga"}}
}

// instanceName names the n-th process of target.
func instanceName(target string, n int) string { return fmt.Sprintf("%s#%d", target, n) }

// platform is the running system: its database, its broker and one process per target.
type platform struct {
	t         *testing.T
	bin       string
	dir       string
	pg        *pgcluster.Cluster
	db        string
	nats      *natsrv.Server
	natsUsers []natsrv.User
	ports     map[int]bool // handed out by port
	natsDir   string
	natsPt    int
	gateway   string   // the first gateway's URL
	gateways  []string // every gateway's
	token     string
	twice     []string // targets run as two processes
	thrice    []string // targets run as three

	mu    sync.Mutex
	procs map[string]*proc    // by instance ("gateway#1")
	addrs map[string]string   // by instance
	env   []string            // every process's
	own   map[string][]string // an instance's own variables, after env
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, NATS and eleven orderflow processes")
	}
	if _, err := pgcluster.BinDir(); err != nil {
		t.Skip(err)
	}
	s := plan()
	p := start(t, s.twice, s.thrice)
	tok, err := auth.Issue([]byte(secret), "chaos-admin", auth.Admin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p.token = "Bearer " + tok

	// Products with plenty of stock, and one with none (its orders are compensated).
	var products []string
	for i := range s.products + 1 {
		id := fmt.Sprintf("chaos-p%d", i)
		p.must("POST", "/api/v1/products", fmt.Sprintf(`{"productId":%q,"sku":"CHAOS-%d","name":"chaos %d","priceCents":100}`, id, i, i))
		if i < s.products {
			p.must("POST", "/api/v1/products/"+id+"/restock", `{"quantity":900000}`)
		}
		products = append(products, id)
	}

	load := newLoad(p, s.rate, products)
	go load.run()
	watching, stopWatching := context.WithCancel(t.Context())
	backwards := make(chan []string, 1)
	go func() { backwards <- p.watchOrders(watching) }()
	time.Sleep(s.settle)
	var rows []faultRow
	for _, f := range s.faults {
		rows = append(rows, p.fault(f, s.down, s.freeze, load))
		time.Sleep(s.settle)
	}
	load.stop()
	stopWatching()
	if moved := <-backwards; len(moved) > 0 {
		t.Errorf("%d order rows went backwards in the read model, e.g. %s", len(moved), moved[0])
	}

	if len(p.gateways) > 1 {
		p.checkTwoInstances(products)
	}
	// The end: a last order, restock and customer, whose positions every read model must reach.
	p.settleAndCheck(load, products)
	p.print(rows, load)
}

// faultRow is one line of the table.
type faultRow struct {
	fault        string
	down         time.Duration
	placed, fail int // requests answered 201 / otherwise while the fault lasted and until recovery
	recovery     time.Duration
}

func start(t *testing.T, twice, thrice []string) *platform {
	t.Helper()
	// Not t.TempDir: the cluster runs as the postgres user when we are root, and must reach it.
	dir, err := pgcluster.TempDir("orderflow-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := &platform{t: t, dir: dir, procs: map[string]*proc{}, addrs: map[string]string{}, own: map[string][]string{}, twice: twice, thrice: thrice}
	p.bin = filepath.Join(dir, "orderflow")
	build := exec.Command("go", "build", "-o", p.bin, "../cmd/orderflow")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pg, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: filepath.Join(dir, "pg")}) // fsync on, as in production
	if err != nil {
		t.Fatal(err)
	}
	p.pg, p.db = pg, pg.URL("postgres")
	superviseCtx, stopSupervising := context.WithCancel(context.Background())
	go pg.Supervise(superviseCtx, func(msg string, args ...any) { t.Logf("postgres: %s %v", msg, args) })
	t.Cleanup(func() { stopSupervising(); _ = pg.Stop() })

	p.natsDir, p.natsPt = filepath.Join(dir, "nats"), p.port()
	// Every target connects as itself, with the permissions of its job (as in production).
	seeds := filepath.Join(dir, "nats-seeds")
	if p.natsUsers, err = registry.MakeIdentities(seeds, wire.DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	if p.nats, err = natsrv.Start(natsrv.Options{StoreDir: p.natsDir, Port: p.natsPt, Users: p.natsUsers}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.nats.Stop() })

	for n := 1; n <= p.instances("gateway"); n++ {
		gw := instanceName("gateway", n)
		p.addrs[gw] = fmt.Sprintf("127.0.0.1:%d", p.port())
		p.gateways = append(p.gateways, "http://"+p.addrs[gw])
	}
	p.gateway = p.gateways[0]
	// The simulated card gateway's own listener, one per instance: each payment service calls its
	// own (a real deployment calls the one URL of the card provider).
	for n := 1; n <= p.instances("payment-provider"); n++ {
		provider := fmt.Sprintf("127.0.0.1:%d", p.port())
		p.own[instanceName("payment-provider", n)] = []string{"PAYMENT_PROVIDER_ADDR=" + provider}
		p.own[instanceName("payment-commands", n)] = []string{"PAYMENT_PROVIDER_URL=http://" + provider}
	}
	p.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"DATABASE_URL=" + p.db, "NATS_URL=" + p.nats.URL(), "ORDERFLOW_NATS_SEEDS=" + seeds, "ORDERFLOW_JWT_SECRET=" + secret, "ORDERFLOW_LOG_FORMAT=json", "ORDERFLOW_LOG_LEVEL=warn",
		"PAYMENT_PROVIDER_URL=http://" + strings.TrimPrefix(p.own[instanceName("payment-provider", 1)][0], "PAYMENT_PROVIDER_ADDR="),
		"FULFILLMENT_STEP_TIMEOUT=3s", "GATEWAY_RATE_LIMIT=0"}
	t.Cleanup(func() { // registered before any launch: a failed start stops what it started
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, pr := range p.procs {
			_ = pr.cmd.Process.Signal(syscall.SIGINT)
		}
		for _, pr := range p.procs {
			select {
			case <-pr.done:
			case <-time.After(15 * time.Second):
				_ = pr.cmd.Process.Kill()
			}
		}
	})
	// In the registry's order: the card gateway before the payment service, the projector (which
	// migrates the read models) before the query services, the gateway last.
	for _, target := range registry.TargetNames() {
		for n := 1; n <= p.instances(target); n++ {
			p.launch(instanceName(target, n))
			p.ready(instanceName(target, n), 60*time.Second)
		}
	}
	return p
}

// instances is how many processes run target.
func (p *platform) instances(target string) int {
	if slices.Contains(p.thrice, target) {
		return 3
	}
	if slices.Contains(p.twice, target) {
		return 2
	}
	return 1
}

// launch starts instance ("inventory-commands#2") as its own process (its log in the test's
// directory).
func (p *platform) launch(instance string) {
	p.t.Helper()
	target, _, _ := strings.Cut(instance, "#")
	addr, ok := p.addrs[instance]
	if !ok {
		addr = fmt.Sprintf("127.0.0.1:%d", p.port())
		p.addrs[instance] = addr
	}
	logf, err := os.OpenFile(filepath.Join(p.dir, instance+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "serve", "--target="+target, "--http-addr="+addr, "--data-dir="+filepath.Join(p.dir, "data"))
	cmd.Env, cmd.Stdout, cmd.Stderr = append(slices.Clone(p.env), p.own[instance]...), logf, logf
	// Its own process group (a kill reaches it alone); killed with the test binary if that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	pr := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(pr.done) }()
	p.mu.Lock()
	p.procs[instance] = pr
	p.mu.Unlock()
}

// proc is a target's process; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// ready waits for instance's /readyz.
func (p *platform) ready(instance string, limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get("http://" + p.addrs[instance] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, instance+".log"))
			p.t.Fatalf("%s not ready within %v: %v\n%s", instance, limit, err, tail(string(log), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fault breaks one part for down (a frozen instance: for freeze), brings it back and waits until
// orders are acknowledged again.
func (p *platform) fault(name string, down, freeze time.Duration, l *load) faultRow {
	p.t.Helper()
	from := time.Now()
	switch instance, frozen := strings.CutPrefix(name, "freeze:"); {
	case frozen: // SIGSTOP: the process keeps its connections and its place, and answers nothing
		p.mu.Lock()
		pr := p.procs[instance]
		p.mu.Unlock()
		_ = syscall.Kill(pr.cmd.Process.Pid, syscall.SIGSTOP)
		time.Sleep(freeze)
		_ = syscall.Kill(pr.cmd.Process.Pid, syscall.SIGCONT)
		p.ready(instance, 60*time.Second)
	case name == "postgres":
		pid := postmaster(p.t, p.pg)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			p.t.Fatal(err)
		}
		time.Sleep(down) // the supervisor starts it again meanwhile, on the same port
	case name == "nats":
		p.nats.Stop()
		time.Sleep(down)
		var err error
		if p.nats, err = natsrv.Start(natsrv.Options{StoreDir: p.natsDir, Port: p.natsPt, Users: p.natsUsers}); err != nil {
			p.t.Fatal(err)
		}
	default:
		p.mu.Lock()
		pr := p.procs[name]
		p.mu.Unlock()
		_ = syscall.Kill(pr.cmd.Process.Pid, syscall.SIGKILL)
		<-pr.done
		time.Sleep(down)
		p.launch(name)
		p.ready(name, 60*time.Second)
	}
	back := time.Now()
	recovered := l.firstPlacedAfter(back, 60*time.Second)
	placed, failed := l.between(from, recovered)
	return faultRow{fault: name, down: back.Sub(from), placed: placed, fail: failed, recovery: recovered.Sub(back)}
}

// settleAndCheck waits for the platform to finish what the load started and checks it all.
func (p *platform) settleAndCheck(l *load, products []string) {
	t := p.t
	t.Helper()
	ctx := t.Context()
	// Markers placed after everything else: read models at or past their positions are at the head.
	var orderPos, restockPos, customerPos string
	lastOrder := "chaos-last-" + uuid.NewString()[:8]
	orderPos = p.must("POST", "/api/v1/orders", fmt.Sprintf(`{"orderId":%q,"customerId":"chaos-c","lines":[{"productId":%q,"quantity":1,"unitPriceCents":100}]}`, lastOrder, products[0]))["position"]
	restockPos = p.must("POST", "/api/v1/products/"+products[0]+"/restock", `{"quantity":1}`)["position"]
	customerPos = p.must("POST", "/api/v1/customers", `{"customerId":"chaos-last","name":"Last","email":"last@example.com","shippingAddress":{"line1":"1 rue","city":"Paris","postalCode":"75001","country":"FR"}}`)["position"]
	for _, q := range []struct{ query, pos string }{
		{fmt.Sprintf(`{ order(id: %q) { id } }`, lastOrder), orderPos},
		{fmt.Sprintf(`{ product(id: %q) { id } }`, products[0]), restockPos},
		{`{ customer(id: "chaos-last") { id } }`, customerPos},
	} {
		if ans := p.graphQL(q.query, q.pos); strings.Contains(ans, `"errors"`) || strings.Contains(ans, "null") {
			t.Errorf("read model not at the head (%s at %s): %s", q.query, q.pos, ans)
		}
	}

	conn, err := pgx.Connect(ctx, p.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Every saga final, none stuck.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var open, stuck int
		if err := conn.QueryRow(ctx, `select count(*) filter (where step not in ('CONFIRMED', 'CANCELLED')), count(*) filter (where stuck)
from fulfillment.fulfillment`).Scan(&open, &stuck); err != nil {
			t.Fatal(err)
		}
		if open == 0 && stuck == 0 {
			break
		}
		if time.Now().After(deadline) {
			p.describeOpenSagas(conn)
			t.Fatalf("after 3 minutes, %d sagas not final and %d stuck", open, stuck)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The finished sagas' figures, kept by the transactions that finish them through every crash
	// and freeze, are what counting them says.
	var kept, counted string
	if err := conn.QueryRow(ctx, `select
  coalesce((select string_agg(outcome || '=' || n, ',' order by outcome) from (select outcome, sum(sagas) n from fulfillment.fulfillment_outcomes group by outcome having sum(sagas) <> 0) k), ''),
  coalesce((select string_agg(outcome || '=' || n, ',' order by outcome) from (select outcome, count(*) n from fulfillment.fulfillment where outcome <> '' group by outcome) c), '')`).Scan(&kept, &counted); err != nil {
		t.Fatal(err)
	}
	if kept != counted {
		t.Errorf("the saga's figures say %s, its sagas %s", kept, counted)
	}
	// Every acknowledged order once in the log, and final in the read model.
	acked := l.acked()
	rows, err := conn.Query(ctx, `select o.id, (select count(*) from eventstore.events e where e.stream_id = 'order-' || o.id and e.event_type = $2),
  coalesce((select status from orders.orders r where r.order_id = o.id), '')
from unnest($1::text[]) o(id)`, acked, order.TypePlaced)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for rows.Next() {
		var id, status string
		var n int
		if err := rows.Scan(&id, &n, &status); err != nil {
			t.Fatal(err)
		}
		if n != 1 || (status != "CONFIRMED" && status != "CANCELLED") {
			if missing++; missing <= 5 {
				t.Errorf("acknowledged order %s: placed %d times in the log, %q in the read model", id, n, status)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged orders not once in the log and final in the read model", missing, len(acked))
	}
	// Stock exact: reservations are the confirmed orders' units; the catalog agrees with the log.
	for _, id := range products {
		st := fold(t, conn, id)
		var wantReserved, onHand, reserved int64
		if err := conn.QueryRow(ctx, `select coalesce(sum((l->>'quantity')::bigint), 0) from orders.orders, jsonb_array_elements(lines) l
where status = 'CONFIRMED' and l->>'productId' = $1`, id).Scan(&wantReserved); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `select on_hand, reserved from catalog.products where product_id = $1`, id).Scan(&onHand, &reserved); err != nil {
			t.Fatal(err)
		}
		if st.ReservedTotal() != wantReserved || st.Available() < 0 {
			t.Errorf("%s: %d units reserved in the log, the confirmed orders hold %d (available %d)", id, st.ReservedTotal(), wantReserved, st.Available())
		}
		if onHand != st.OnHand || reserved != st.ReservedTotal() {
			t.Errorf("%s: catalog says on hand %d reserved %d, the log %d and %d", id, onHand, reserved, st.OnHand, st.ReservedTotal())
		}
	}
	p.checkEffectsOnce(conn)
	// Nothing parked.
	for _, schema := range []string{"orders", "catalog", "customers", "fulfillment"} {
		var parked int
		if err := conn.QueryRow(ctx, `select count(*) from `+schema+`.projection_parked`).Scan(&parked); err != nil {
			t.Fatal(err)
		}
		if parked != 0 {
			t.Errorf("%s: %d events parked", schema, parked)
		}
	}
}

// checkEffectsOnce: no effect carried out twice, whichever worker sent the commands: one
// reservation per order and product, one authorization per payment.
func (p *platform) checkEffectsOnce(conn *pgx.Conn) {
	t := p.t
	t.Helper()
	var twice int
	var example string
	if err := conn.QueryRow(t.Context(), `select count(*), coalesce(min(what), '') from (
  select 'order ' || (data->>'orderId') || ' reserved ' || stream_id || ' ' || count(*) || ' times' what from eventstore.events
   where event_type = $1 group by data->>'orderId', stream_id having count(*) > 1
  union all
  select 'payment ' || stream_id || ' authorized ' || count(*) || ' times' from eventstore.events
   where event_type = $2 group by stream_id having count(*) > 1) d`, inventory.TypeReserved, payment.TypeAuthorized).Scan(&twice, &example); err != nil {
		t.Fatal(err)
	}
	if twice > 0 {
		t.Errorf("%d effects carried out twice, e.g. %s", twice, example)
	}
}

// watchOrders reads the orders read model twice a second until ctx ends and answers the rows it
// saw go backwards: an order's row changed to an earlier time than it had (a worker that lost its
// partition writing its stale batch over the new owner's), or from a final status back to PLACED.
func (p *platform) watchOrders(ctx context.Context) []string {
	conn, err := pgx.Connect(ctx, p.db)
	if err != nil {
		return []string{err.Error()}
	}
	defer conn.Close(context.Background())
	type seen struct {
		status string
		at     time.Time
	}
	last := map[string]seen{}
	var backwards []string
	for ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		rows, err := conn.Query(ctx, `select order_id, status, updated_at from orders.orders`)
		if err != nil {
			continue // the database restarts in a fault: the next read
		}
		for rows.Next() {
			var id string
			var now seen
			if rows.Scan(&id, &now.status, &now.at) != nil {
				continue
			}
			if was, ok := last[id]; ok && (now.at.Before(was.at) || (was.status != "PLACED" && now.status == "PLACED")) {
				backwards = append(backwards, fmt.Sprintf("%s: %s at %s, then %s at %s", id, was.status, was.at.Format(time.StampMicro), now.status, now.at.Format(time.StampMicro)))
			}
			last[id] = now
		}
		rows.Close()
	}
	return backwards
}

func fold(t *testing.T, conn *pgx.Conn, product string) inventory.State {
	t.Helper()
	rows, err := conn.Query(t.Context(), `select event_type, data::text from eventstore.events where stream_id = $1 order by stream_version`, inventory.Stream(product))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var st inventory.State
	for rows.Next() {
		var typ, data string
		if err := rows.Scan(&typ, &data); err != nil {
			t.Fatal(err)
		}
		e, err := inventory.Codec.Decode(typ, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		st = inventory.Evolve(st, e)
	}
	return st
}

func (p *platform) print(rows []faultRow, l *load) {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tdown\tplaced\tnot placed\trecovery\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%v\t\n", r.fault, r.down.Round(10*time.Millisecond), r.placed, r.fail, r.recovery.Round(10*time.Millisecond))
	}
	_ = tw.Flush()
	placed, failed := l.between(time.Time{}, time.Now())
	fmt.Fprintf(&b, "offered %d orders at %d/s: %d acknowledged, %d not (every acknowledged order once in the log and final, every saga final, stock exact, nothing parked, read models at the head)\n",
		placed+failed, l.rate, placed, failed)
	p.t.Log("\n" + b.String())
	fmt.Print(b.String())
}

// must makes a request (as the chaos admin) until it succeeds, up to 30 s: the setup and the
// markers are not what is measured.
func (p *platform) must(method, path, body string) map[string]string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, b, err := p.do(method, path, body, uuid.NewString())
		if err == nil && status < 300 {
			var out map[string]string
			_ = json.Unmarshal(b, &out)
			return out
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s %s: %d %s %v", method, path, status, b, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *platform) do(method, path, body, key string) (int, []byte, error) {
	return p.doAt(p.gateway, p.token, method, path, body, key)
}

// doAt makes a request of the gateway at base, as token.
func (p *platform) doAt(base, token, method, path, body, key string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (p *platform) graphQL(query, position string) string {
	return p.graphQLAt(p.gateway, query, position)
}

// graphQLAt asks the gateway at base, as the chaos admin.
func (p *platform) graphQLAt(base, query, position string) string {
	p.t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest("POST", base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Authorization", p.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Consistency-Position", position)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// load places orders at a fixed rate, whatever the answers take (open loop), and records each
// answer.
type load struct {
	p        *platform
	rate     int
	products []string
	quit     chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	results []result
}

type result struct {
	at     time.Time
	id     string
	placed bool
}

func newLoad(p *platform, rate int, products []string) *load {
	return &load{p: p, rate: rate, products: products, quit: make(chan struct{})}
}

func (l *load) run() {
	tick := time.NewTicker(time.Second / time.Duration(l.rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			id := fmt.Sprintf("chaos-%d-%s", n, uuid.NewString()[:8])
			stocked := l.products[:len(l.products)-1]
			lines := fmt.Sprintf(`{"productId":%q,"quantity":%d,"unitPriceCents":100}`, stocked[n%len(stocked)], 1+rand.IntN(3))
			if n%10 == 0 { // one in ten also wants the product that has none: compensated
				lines += fmt.Sprintf(`,{"productId":%q,"quantity":1,"unitPriceCents":100}`, l.products[len(l.products)-1])
			}
			body := fmt.Sprintf(`{"orderId":%q,"customerId":"chaos-c%d","lines":[%s]}`, id, n%20, lines)
			var status int
			var err error
			for k := range l.p.gateways { // as a load balancer: the next gateway when one does not answer
				status, _, err = l.p.doAt(l.p.gateways[(n+k)%len(l.p.gateways)], l.p.token, "POST", "/api/v1/orders", body, id)
				if err == nil {
					break
				}
			}
			l.mu.Lock()
			l.results = append(l.results, result{at: time.Now(), id: id, placed: err == nil && status == http.StatusCreated})
			l.mu.Unlock()
		}()
	}
}

func (l *load) stop() {
	close(l.quit)
	l.wg.Wait()
}

func (l *load) acked() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for _, r := range l.results {
		if r.placed {
			ids = append(ids, r.id)
		}
	}
	return ids
}

func (l *load) between(from, to time.Time) (placed, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.results {
		if r.at.Before(from) || r.at.After(to) {
			continue
		}
		if r.placed {
			placed++
		} else {
			failed++
		}
	}
	return placed, failed
}

// firstPlacedAfter is when the first order answered after t was acknowledged.
func (l *load) firstPlacedAfter(t time.Time, limit time.Duration) time.Time {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, r := range l.results {
			if r.placed && !r.at.Before(t) {
				l.mu.Unlock()
				return r.at
			}
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	l.p.t.Fatalf("no order acknowledged within %v of the recovery at %v", limit, t.Format(time.TimeOnly))
	return time.Time{}
}

func postmaster(t *testing.T, c *pgcluster.Cluster) int {
	t.Helper()
	pid, err := c.PID()
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// port is a free port no other part of this platform was given: a port handed out but not yet
// bound (the gateway's, launched last) is free to the kernel, which may hand it out again.
func (p *platform) port() int {
	p.t.Helper()
	for {
		port := freePort(p.t)
		if !p.ports[port] {
			if p.ports == nil {
				p.ports = map[int]bool{}
			}
			p.ports[port] = true
			return port
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// describeOpenSagas logs the sagas that are not final, with their orders' streams: what a failure
// needs to be understood.
func (p *platform) describeOpenSagas(conn *pgx.Conn) {
	ctx := p.t.Context()
	rows, err := conn.Query(ctx, `select order_id, state::text from fulfillment.fulfillment where step not in ('CONFIRMED', 'CANCELLED') or stuck limit 5`)
	if err != nil {
		p.t.Log(err)
		return
	}
	var ids []string
	for rows.Next() {
		var id, state string
		_ = rows.Scan(&id, &state)
		p.t.Logf("saga %s: %s", id, state)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		rows, err := conn.Query(ctx, `select stream_id, stream_version, event_type, recorded_at, left(data::text, 300), global_position from eventstore.events
where stream_id in ('order-' || $1, 'stock_reservation-' || $1, 'payment-' || $1) or data::text like '%' || $1 || '%' order by global_position`, id)
		if err != nil {
			p.t.Log(err)
			continue
		}
		for rows.Next() {
			var stream, typ, data string
			var ver, gp int64
			var at time.Time
			_ = rows.Scan(&stream, &ver, &typ, &at, &data, &gp)
			p.t.Logf("  %d %s/%d %s %s %s", gp, stream, ver, typ, at.Format("15:04:05.000"), data)
		}
		rows.Close()
	}
	var outbox int
	_ = conn.QueryRow(ctx, `select count(*) from fulfillment.fulfillment_outbox`).Scan(&outbox)
	p.t.Logf("outbox: %d commands", outbox)
}
