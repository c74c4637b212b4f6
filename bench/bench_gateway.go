package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/platform"
	"github.com/orderflow/orderflow/wire"
)

// gatewayOrderQuery is the benchmark's read: an order with its lines, their products and its
// customer.
const gatewayOrderQuery = `query($id: ID!) { order(id: $id) { id status totalCents
  lines { productId quantity unitPriceCents product { id name priceCents available } }
  customer { id name email } } }`

// benchGateway runs `orderflow-bench gateway`: the whole platform in this process, a seeded
// shop, then the same data (an order with lines, products and customer) read by concurrent
// clients through the gateway (HTTP + GraphQL + the query services over NATS) and by calling the
// query services directly over NATS, in alternating rounds of the same run.
func benchGateway(fs *flag.FlagSet) benchRun {
	clients := fs.Int("clients", 32, "concurrent clients")
	duration := fs.Duration("duration", 2*time.Second, "length of each round")
	rounds := fs.Int("rounds", 6, "rounds of each path, alternating")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the measured rounds to this file")
	only := fs.String("only", "", "measure one path only, gateway or direct (to profile it)")
	return func(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
		if *only != "" && *only != "gateway" && *only != "direct" {
			return fmt.Errorf("--only: %q is neither gateway nor direct", *only)
		}
		uuid.EnableRandPool() // as main does
		p, err := startBenchPlatform(ctx, "gateway", nil, getenv, stdout, stderr)
		if err != nil {
			return err
		}
		defer p.stop()
		// The shop: 20 products, 50 customers, 300 orders of 3 lines.
		for i := range 20 {
			if err := p.post("/api/v1/products", fmt.Sprintf(`{"productId":"p-%d","sku":"GW-%d","name":"Product %d","priceCents":%d}`, i, i, i, 100+i)); err != nil {
				return err
			}
		}
		for i := range 50 {
			if err := p.post("/api/v1/customers", fmt.Sprintf(`{"customerId":"c-%d","name":"Customer %d","email":"c%d@example.com","shippingAddress":{"line1":"1 Main St","city":"Paris","postalCode":"75001","country":"FR"}}`, i, i, i)); err != nil {
				return err
			}
		}
		var ids []string
		for i := range 300 {
			id := fmt.Sprintf("o-%d", i)
			ids = append(ids, id)
			if err := p.post("/api/v1/orders", fmt.Sprintf(`{"orderId":"%s","customerId":"c-%d","lines":[{"productId":"p-%d","quantity":1},{"productId":"p-%d","quantity":2},{"productId":"p-%d","quantity":3}]}`,
				id, i%50, i%20, (i+7)%20, (i+13)%20)); err != nil {
				return err
			}
		}
		// Direct calls come from the gateway's identity: the query services answer nobody else.
		id, err := platform.IdentityOptions("gateway", filepath.Join(p.seeds, "gateway.nk"))
		if err != nil {
			return err
		}
		nc, err := nats.Connect(p.natsURL, id...)
		if err != nil {
			return err
		}
		defer nc.Close()
		// ... and each request carries the gateway's signed assertion of its caller, an admin here,
		// as the gateway's own requests do.
		signer, err := platform.Signer("gateway", p.seeds)
		if err != nil {
			return err
		}
		ctx = auth.WithSigner(auth.With(ctx, auth.Principal{Subject: "bench", Role: auth.Admin}), signer)
		ns := wire.DefaultNamespace
		// Direct: the order, then its customer and its products at once, as the gateway does.
		direct := func(ctx context.Context, id string) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			o, err := rpc.Ask(ctx, nc, ns, wire.EndpointOrderByID, wire.OrderByID{ID: id})
			if err != nil {
				return err
			}
			var products []string
			for _, l := range o.Lines {
				products = append(products, l.ProductID)
			}
			var cs []wire.Customer
			var ps []wire.Product
			var cErr, pErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				cs, cErr = rpc.Ask(ctx, nc, ns, wire.EndpointCustomersByIDs, wire.CustomersByIDs{IDs: []string{o.CustomerID}})
			})
			wg.Go(func() {
				ps, pErr = rpc.Ask(ctx, nc, ns, wire.EndpointProductsByIDs, wire.ProductsByIDs{IDs: products})
			})
			wg.Wait()
			if err := errors.Join(cErr, pErr); err != nil {
				return err
			}
			if len(cs) != 1 || len(ps) != 3 {
				return fmt.Errorf("order %s: %d customers, %d products", id, len(cs), len(ps))
			}
			return nil
		}
		gateway := func(ctx context.Context, id string) error {
			body, _ := json.Marshal(map[string]any{"query": gatewayOrderQuery, "variables": map[string]any{"id": id}})
			b, err := p.postAnswer(ctx, "/graphql", body)
			if err == nil && (bytes.Contains(b, []byte(`"errors"`)) || !bytes.Contains(b, []byte(`"email"`))) {
				err = fmt.Errorf("gateway: %.200s", b)
			}
			return err
		}
		// Every order readable (the read models caught up) before measuring.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if direct(ctx, ids[len(ids)-1]) == nil && gateway(ctx, ids[len(ids)-1]) == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the seeded orders are not readable after 30s: direct: %v; gateway: %v", direct(ctx, ids[len(ids)-1]), gateway(ctx, ids[len(ids)-1]))
			}
		}
		run := func(read func(context.Context, string) error) ([]time.Duration, time.Duration, error) {
			var mu sync.Mutex
			var lat []time.Duration
			var firstErr error
			start := time.Now()
			var wg sync.WaitGroup
			for range *clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for time.Since(start) < *duration {
						t := time.Now()
						err := read(ctx, ids[rand.IntN(len(ids))])
						if err != nil {
							mu.Lock()
							firstErr = err
							mu.Unlock()
							return
						}
						mine = append(mine, time.Since(t))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			return lat, time.Since(start), firstErr
		}
		// Warm both paths, then alternate rounds.
		for _, read := range []func(context.Context, string) error{direct, gateway} {
			if _, _, err := run(read); err != nil {
				return err
			}
		}
		stopProfile, err := cpuProfile(*profile)
		if err != nil {
			return err
		}
		defer stopProfile()
		var dLat, gLat []time.Duration
		var dTime, gTime time.Duration
		for range *rounds {
			if *only != "direct" {
				l, took, err := run(gateway)
				if err != nil {
					return err
				}
				gLat, gTime = append(gLat, l...), gTime+took
			}
			if *only != "gateway" {
				l, took, err := run(direct)
				if err != nil {
					return err
				}
				dLat, dTime = append(dLat, l...), dTime+took
			}
		}
		if *only != "" {
			lat, took := gLat, gTime
			if *only == "direct" {
				lat, took = dLat, dTime
			}
			slices.Sort(lat)
			fmt.Fprintf(stdout, "%s only: %.0f/s, p50 %s, p99 %s (%d clients)\n", *only, float64(len(lat))/took.Seconds(), pct(lat, 50), pct(lat, 99), *clients)
			return nil
		}
		slices.Sort(dLat)
		slices.Sort(gLat)
		dp99, gp99 := pct(dLat, 99), pct(gLat, 99)
		fmt.Fprintf(stdout, "direct to the query services over NATS: %.0f reads/s, p50 %s, p99 %s (%d clients)\n", float64(len(dLat))/dTime.Seconds(), pct(dLat, 50), dp99, *clients)
		fmt.Fprintf(stdout, "through the gateway (HTTP + GraphQL):  %.0f queries/s, p50 %s, p99 %s (%d clients; goal >= 3000/s)\n", float64(len(gLat))/gTime.Seconds(), pct(gLat, 50), gp99, *clients)
		fmt.Fprintf(stdout, "gateway p99 vs direct p99: ratio %.2f (goal <= 2.00)\n", gp99.Seconds()/dp99.Seconds())
		return nil
	}
}
