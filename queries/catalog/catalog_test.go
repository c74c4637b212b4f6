package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/commands/commandstest"
	"github.com/orderflow/orderflow/commands/inventory"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	catalogrm "github.com/orderflow/orderflow/projections/catalog"
	"github.com/orderflow/orderflow/projections/projectiontest"
	"github.com/orderflow/orderflow/queries/catalog"
	"github.com/orderflow/orderflow/testkit/pgtest"
	"github.com/orderflow/orderflow/wire"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T) (inventory.Handlers, catalog.Service) {
	rm := projectiontest.Start(t, catalogrm.Projection{})
	return inventory.Handlers{Writer: commandstest.Writer(rm.Store), Store: rm.Store}, catalog.Service{Pool: rm.Pool, ReadModel: progress.ReadModel{Waiter: rm.Waiter, ConsistencyTimeout: 10 * time.Second}}
}

// TestLastUnitsAgainstTheReadModel races 20 orders for the last 5 units and checks the catalog
// read model agrees with the write side: 5 reserved, none available, never negative.
func TestLastUnitsAgainstTheReadModel(t *testing.T) {
	t.Parallel()
	h, q := setup(t)
	ok := commandstest.Must(t)
	ok(h.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("add"), ProductID: "p1", SKU: "SCARCE-1", Name: "Scarce", PriceCents: 500}))
	ok(h.Restock(t.Context(), wire.Restock{Meta: commandstest.Meta("restock"), ProductID: "p1", Quantity: 5}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.ReserveStock(context.Background(), wire.ReserveStock{Meta: commandstest.Meta(fmt.Sprintf("r%d", i)), OrderID: fmt.Sprintf("o%d", i), Lines: []wire.OrderLine{{ProductID: "p1", Quantity: 1, UnitPriceCents: 500}}})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			}
		}()
	}
	wg.Wait()
	// A final command whose position is after every reservation.
	pos := ok(h.ChangePrice(t.Context(), wire.ChangePrice{Meta: commandstest.Meta("price"), ProductID: "p1", PriceCents: 600})).Position
	p, err := q.ProductByID(t.Context(), wire.ProductByID{ID: "p1", MinPosition: pos})
	if err != nil {
		t.Fatal(err)
	}
	if won != 5 || p.OnHand != 5 || p.Reserved != 5 || p.Available != 0 || p.PriceCents != 600 {
		t.Fatalf("%d orders won; read model says on hand %d reserved %d available %d price %d; want 5, 5, 5, 0, 600", won, p.OnHand, p.Reserved, p.Available, p.PriceCents)
	}
}

func TestSearchAndLowStock(t *testing.T) {
	t.Parallel()
	h, q := setup(t)
	ok := commandstest.Must(t)
	for i, name := range []string{"Apple", "apricot", "Banana", "Avocado", "Cherry"} {
		id := fmt.Sprintf("p%d", i)
		ok(h.AddProduct(t.Context(), wire.AddProduct{Meta: commandstest.Meta("add-" + id), ProductID: id, SKU: fmt.Sprintf("FRUIT-%d", i), Name: name, PriceCents: 100}))
		ok(h.Restock(t.Context(), wire.Restock{Meta: commandstest.Meta("rs-" + id), ProductID: id, Quantity: int64(i + 1)}))
	}
	pos := ok(h.Discontinue(t.Context(), wire.IDCommand{Meta: commandstest.Meta("disc"), ID: "p0"})).Position
	page, err := q.SearchProducts(t.Context(), wire.SearchProducts{Query: "A", First: 2, MinPosition: pos})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Products) != 2 || page.Products[0].Name != "Apple" || page.Products[1].Name != "apricot" || !page.HasNextPage {
		t.Fatalf("first page for A: %+v", page)
	}
	page, err = q.SearchProducts(t.Context(), wire.SearchProducts{Query: "a", First: 2, After: page.EndCursor})
	if err != nil || len(page.Products) != 1 || page.Products[0].Name != "Avocado" || page.HasNextPage {
		t.Fatalf("second page for a: %+v %v", page, err)
	}
	if page, _ := q.SearchProducts(t.Context(), wire.SearchProducts{Query: "fruit-4"}); len(page.Products) != 1 || page.Products[0].Name != "Cherry" {
		t.Fatalf("search by sku: %+v", page)
	}
	if page, _ := q.SearchProducts(t.Context(), wire.SearchProducts{Query: "%"}); len(page.Products) != 0 {
		t.Fatalf("%% is a character, not a wildcard: %+v", page)
	}
	low, err := q.LowStock(t.Context(), wire.LowStock{Threshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(low) != 2 || low[0].ID != "p1" || low[1].ID != "p2" {
		t.Fatalf("low stock (≤3, discontinued p0 left out): %+v", low)
	}
	many, err := q.ProductsByIDs(t.Context(), wire.ProductsByIDs{IDs: []string{"p1", "p3", "nope"}})
	if err != nil || len(many) != 2 {
		t.Fatalf("by ids: %+v %v", many, err)
	}
	var rerr *rpc.Error
	if _, err := q.ProductByID(t.Context(), wire.ProductByID{ID: "nope"}); !errors.As(err, &rerr) || rerr.Code != rpc.CodeNotFound {
		t.Errorf("unknown product: %v", err)
	}
	if _, err := q.SearchProducts(t.Context(), wire.SearchProducts{After: "!!"}); !errors.As(err, &rerr) || rerr.Code != rpc.CodeInvalid {
		t.Errorf("bad cursor: %v", err)
	}
}
