package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/orderflow/orderflow/internal/telemetry"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
)

// benchTracing runs `orderflow-bench tracing`: the saga's throughput phase (orders from 32 REST
// clients, placed→confirmed from the event store's timestamps) on fresh platforms, alternately
// without trace export and with every span exported over OTLP/HTTP to a collector in this process
// that counts and drops what it receives. It prints the medians and their ratio: the cost of
// tracing with export on.
func benchTracing(fs *flag.FlagSet) benchRun {
	orders := fs.Int("orders", 2000, "orders of each round")
	rounds := fs.Int("rounds", 2, "rounds of each kind, alternating")
	clients := fs.Int("clients", 32, "concurrent REST clients")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		var received atomic.Int64
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		sink := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			received.Add(n)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
		})}
		go func() { _ = sink.Serve(ln) }()
		defer sink.Close()
		collector := "http://" + ln.Addr().String() + "/v1/traces"

		rates := map[bool][]float64{}
		for round := range 2 * *rounds {
			traced := round%2 == 1
			env := map[string]string{"PAYMENT_PROVIDER_LATENCY": "5ms"}
			if traced {
				env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = collector
			} else {
				otel.SetTracerProvider(noop.NewTracerProvider()) // no provider left over from a traced round
			}
			before := received.Load()
			rate, err := sagaThroughput(ctx, fmt.Sprintf("tracing_%d", round), env, *orders, *clients, getenv, stdout, stderr)
			if err != nil {
				return err
			}
			rates[traced] = append(rates[traced], rate)
			fmt.Fprintf(stdout, "round %d, export %v: %.0f orders/s placed→confirmed; %d KiB of spans received\n", round+1, traced, rate, (received.Load()-before)/1024)
		}
		off, on := median(rates[false]), median(rates[true])
		// Without an endpoint nothing is recorded: what is left is the instrumentation itself, timed
		// here on the path of one order, against the CPU an order costs (the cores over the rate).
		otel.SetTracerProvider(noop.NewTracerProvider())
		const n = 20_000
		start := time.Now()
		for range n {
			orderPath(ctx)
		}
		per := time.Since(start) / n
		perOrder := time.Duration(float64(runtime.NumCPU()) / off * float64(time.Second))
		fmt.Fprintf(stdout, "instrumentation without export: %s of CPU per order, %.2f%% of an order's %s\n", per, 100*per.Seconds()/perOrder.Seconds(), perOrder.Round(10*time.Microsecond))
		fmt.Fprintf(stdout, "saga throughput without trace export: %.0f orders/s (median of %s)\n", off, roundRates(rates[false]))
		fmt.Fprintf(stdout, "saga throughput exporting every span over OTLP/HTTP: %.0f orders/s (median of %s)\n", on, roundRates(rates[true]))
		fmt.Fprintf(stdout, "tracing with export on vs off: ratio %.2f\n", on/off)
		return nil
	}
}

// sagaThroughput places orders from clients concurrent REST clients on a fresh platform over 50
// products, waits for every one to be confirmed, and answers the rate placed→confirmed.
func sagaThroughput(ctx context.Context, name string, env map[string]string, orders, clients int, getenv func(string) string, stdout, stderr io.Writer) (float64, error) {
	p, err := startBenchPlatform(ctx, name, env, getenv, stdout, stderr)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	const products = 50
	if err := seedProducts(p, "bench", products); err != nil {
		return 0, err
	}
	rate, _, err := burstOrders(ctx, p, "burst-", orders, clients, products)
	return rate, err
}

// burstOrders places orders (ids prefix1…) over products from clients concurrent REST clients, waits
// for every one the API took to be confirmed, and answers the rate placed→confirmed (from the
// event store's timestamps), the span it took and how many the API refused.
func burstOrders(ctx context.Context, p *benchPlatform, prefix string, orders, clients, products int) (rate float64, refused int, err error) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(orders); i = next.Add(1) {
				body := fmt.Sprintf(`{"orderId":"%s%d","customerId":"c","lines":[{"productId":"bench-%d","quantity":1}]}`, prefix, i, i%int64(products))
				if p.post("/api/v1/orders", body) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err := waitConfirmed(ctx, p.dbURL, prefix, orders-int(failed.Load()), 5*time.Minute); err != nil {
		return 0, 0, err
	}
	lat, span, err := latencies(ctx, p.dbURL, prefix)
	if err != nil {
		return 0, 0, err
	}
	return float64(len(lat)) / span.Seconds(), int(failed.Load()), nil
}

// seedProducts adds n products named prefix-0…, each with a million units.
func seedProducts(p *benchPlatform, prefix string, n int) error {
	for i := range n {
		if err := p.post("/api/v1/products", fmt.Sprintf(`{"productId":"%s-%d","sku":"%s-%d","name":"Product %d","priceCents":999}`, prefix, i, prefix, i, i)); err != nil {
			return err
		}
		if err := p.post(fmt.Sprintf("/api/v1/products/%s-%d/restock", prefix, i), `{"quantity":1000000}`); err != nil {
			return err
		}
	}
	return nil
}

func roundRates(rs []float64) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%.0f", r)
	}
	return out
}

// orderPath does what the instrumentation does for one order without a tracer provider installed
// (export off): the spans of its requests, commands, appends, queued commands and their
// handlers, and the trace context carried in NATS headers and event metadata. It is the
// instrumentation's own cost, for `orderflow-bench tracing` to weigh against an order's.
func orderPath(ctx context.Context) {
	ctx, root := telemetry.Tracer().Start(ctx, "POST /api/v1/orders")
	for range 6 { // place; reserve, authorize, confirm (queued); two reads
		cctx, call := telemetry.Tracer().Start(ctx, "call")
		h := nats.Header{}
		telemetry.Inject(cctx, h)
		sctx, server := telemetry.Tracer().Start(telemetry.Extract(context.Background(), h), "handle")
		cmdCtx, cmd := telemetry.Tracer().Start(sctx, "command")
		_, app := telemetry.Tracer().Start(cmdCtx, "append")
		tp, ts := telemetry.TraceParent(cmdCtx)
		_ = telemetry.WithParent(context.Background(), tp, ts)
		app.End()
		cmd.End()
		server.End()
		call.End()
	}
	root.End()
}
