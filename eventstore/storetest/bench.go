package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
)

// BenchmarkAppend measures single-event appends with exact expected revisions from 16
// concurrent writers, each on its own stream: the shape of command handling.
func BenchmarkAppend(b *testing.B, s eventstore.Store) {
	ctx := context.Background()
	var writer atomic.Int64
	b.SetParallelism(8) // 16 goroutines on 2 cores
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("bench-%d-%s", writer.Add(1), Stream("a"))
		rev := eventstore.NoRevision
		for i := 0; pb.Next(); i++ {
			res, err := s.Append(ctx, stream, eventstore.Exact(rev), []eventstore.EventData{Event("bench.appended.v1", i)})
			if err != nil {
				b.Error(err)
				return
			}
			rev = res.NextRevision
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

// BenchmarkCatchUp measures a subscription to $all reading events already stored, as a
// projector does on start or rebuild: each iteration subscribes from the start of this
// benchmark's events and consumes them all.
func BenchmarkCatchUp(b *testing.B, s eventstore.Store, events int) {
	ctx := context.Background()
	tag := Stream("catchup")
	before, err := s.ReadAll(ctx, eventstore.Start, eventstore.ReadAllOptions{Filter: eventstore.Filter{StreamPrefixes: []string{tag}}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < events; i += 100 {
		batch := make([]eventstore.EventData, 100)
		for j := range batch {
			batch[j] = Event("bench.caughtup.v1", i+j)
		}
		if _, err := s.Append(ctx, fmt.Sprintf("%s-%d", tag, i), eventstore.NoStream(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sub, err := s.SubscribeAll(ctx, before.Position, eventstore.SubscribeOptions{Filter: eventstore.Filter{StreamPrefixes: []string{tag}}, BatchSize: 1000})
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < events; {
			batch, err := sub.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(batch.Events)
		}
		sub.Close()
	}
	b.ReportMetric(float64(b.N*events)/time.Since(start).Seconds(), "events/s")
}
