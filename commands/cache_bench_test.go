package commands_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/orderflow/orderflow/commands"
	ordermodel "github.com/orderflow/orderflow/domain/order"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/wire"
)

// BenchmarkWriterCacheMemory: what the Writer's cache holds for an order it wrote, placed (two
// lines) and confirmed as the order service does, and so for each command id it holds (the unit
// of WriterOptions.MaxCommands). Reported as B/order and B/command: the live heap after a
// collection, with the orders cached, against before.
func BenchmarkWriterCacheMemory(b *testing.B) {
	const orders = 20_000
	orderAgg := commands.NewDecider(ordermodel.Codec, ordermodel.Evolve, ordermodel.Stream, ordermodel.Validate, ordermodel.Decide).
		Creating(func(c ordermodel.Command) bool { _, ok := c.(ordermodel.Place); return ok })
	catalog := map[string]int64{"p-1": 1250, "p-2": 899}
	for range b.N {
		b.StopTimer()
		w := commands.NewWriter(discarding{}, commands.WriterOptions{})
		before := liveHeap()
		b.StartTimer()
		for i := range orders {
			id := fmt.Sprintf("o-%08d", i)
			place := ordermodel.Place{OrderID: id, CustomerID: fmt.Sprintf("c-%d", i%100), Catalog: catalog,
				Lines: []ordermodel.PlaceLine{{ProductID: "p-1", Quantity: 1}, {ProductID: "p-2", Quantity: 2}}}
			if _, err := orderAgg.Answer(b.Context(), w, id, wire.CommandMeta{CommandID: "place-" + id}, place, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := orderAgg.Answer(b.Context(), w, id, wire.CommandMeta{CommandID: "confirm-" + id}, ordermodel.Confirm{OrderID: id}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cached := float64(liveHeap()) - float64(before)
		b.ReportMetric(cached/orders, "B/order")
		b.ReportMetric(cached/(2*orders), "B/command")
		runtime.KeepAlive(w)
		b.StartTimer()
	}
}

// discarding is a store that takes every append and keeps nothing: what stays on the heap is the
// Writer's (it reads nothing for a stream it creates, nor for one it has cached).
type discarding struct{ eventstore.Store }

var appended atomic.Uint64

func (discarding) Append(_ context.Context, _ string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	rev, _ := expected.Revision()
	if expected.IsAny() || expected.IsStreamExists() {
		return eventstore.AppendResult{}, errors.New("discarding: the benchmark appends at exact revisions")
	}
	p := appended.Add(uint64(len(events)))
	return eventstore.AppendResult{NextRevision: rev + int64(len(events)), Position: eventstore.Position{Commit: p, Prepare: p}}, nil
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
