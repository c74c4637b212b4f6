package progress

import (
	"fmt"
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

func pos(n uint64) eventstore.Position { return eventstore.Position{Commit: n, Prepare: n} }

// TestCacheKeepsReadYourWrites: rows stay across announcements that change nothing, go with a
// change (before a waiting query can see its position), and rows read before a known change are
// not kept.
func TestCacheKeepsReadYourWrites(t *testing.T) {
	w := &Waiter{name: "test"}
	c := NewCache[string, int](w, 100)
	c.Put(pos(5), map[string]int{"a": 1})
	if got, missing := c.Get([]string{"a", "b"}); len(got) != 1 || got[0] != 1 || len(missing) != 1 || missing[0] != "b" {
		t.Fatalf("get: %v %v", got, missing)
	}
	w.advance(pos(6), false) // the log moved past events this read model ignores
	if got, _ := c.Get([]string{"a"}); len(got) != 1 {
		t.Fatal("an unchanged announcement dropped the cache")
	}
	w.advance(pos(7), true)
	if got, _ := c.Get([]string{"a"}); len(got) != 0 {
		t.Fatal("a change kept the cache")
	}
	c.Put(pos(6), map[string]int{"a": 1}) // read before the change at 7 was announced
	if got, _ := c.Get([]string{"a"}); len(got) != 0 {
		t.Fatal("rows read before a known change were kept")
	}
	c.Put(pos(7), map[string]int{"a": 2})
	if got, _ := c.Get([]string{"a"}); len(got) != 1 || got[0] != 2 {
		t.Fatalf("rows read at the change: %v", got)
	}
	w.advance(pos(7), true) // a new version swapped in at the same position
	if got, _ := c.Get([]string{"a"}); len(got) != 0 {
		t.Fatal("a swap at the same position kept the cache")
	}
	if w.current() != pos(7) {
		t.Fatalf("waiter at %s", w.current())
	}
	c.Put(pos(8), map[string]int{"x": 1, "y": 2})
	big := map[string]int{}
	for i := range 100 {
		big[fmt.Sprint("k", i)] = i
	}
	c.Put(pos(8), big) // over the bound: starts over
	if got, _ := c.Get([]string{"x"}); len(got) != 0 {
		t.Fatal("the bound did not start the cache over")
	}
}
