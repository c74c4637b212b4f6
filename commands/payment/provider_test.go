package payment_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands/payment"
	"github.com/orderflow/orderflow/dev/cardsim"
)

// TestTheProviderKeepsItsConnections: calls to the card gateway that overlap, wave after wave,
// reuse the connections of the waves before (Go's default transport keeps 2 per host: every call
// past them dialled a connection of its own and dropped it).
func TestTheProviderKeepsItsConnections(t *testing.T) {
	srv := httptest.NewUnstartedServer(cardsim.New(cardsim.Options{Latency: 20 * time.Millisecond}).Handler())
	var dialled atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := payment.NewHTTPProvider(srv.URL, payment.HTTPProviderOptions{})
	const overlap, waves = 16, 4
	for wave := range waves {
		var wg sync.WaitGroup
		for i := range overlap {
			wg.Go(func() {
				id := fmt.Sprintf("pay-%d-%d", wave, i)
				if a, err := p.Authorize(t.Context(), id, "order-"+id, 100); err != nil || !a.Approved {
					t.Errorf("authorize %s: %+v, %v", id, a, err)
				}
			})
		}
		wg.Wait()
	}
	if n := dialled.Load(); n > overlap+2 {
		t.Errorf("%d connections dialled for %d waves of %d overlapping calls, want about %d", n, waves, overlap, overlap)
	}
}
