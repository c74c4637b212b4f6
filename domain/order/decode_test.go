package order_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain/order"
)

// BenchmarkDecodePlaced: order.Codec.Decode (goccy/go-json, through domain.DecodeAs) against
// encoding/json on the same stored payload: the figure behind the choice of decoder
// (go test -bench DecodePlaced ./domain/order/).
func BenchmarkDecodePlaced(b *testing.B) {
	_, data, err := order.Codec.Encode(order.Placed{OrderID: "c4ca4238-a0b9-2382-0dcc-509a6f75849b", CustomerID: "c81e728d-9d4c-2f63-6f06-7f89cc14862c",
		Lines:      []order.Line{{ProductID: "0c5d4d4a-5f3a-2a8b-1f0e-4a5b6c7d8e9f", Quantity: 2, UnitPriceCents: 113}, {ProductID: "1c5d4d4a-5f3a-2a8b-1f0e-4a5b6c7d8e9f", Quantity: 3, UnitPriceCents: 126}},
		TotalCents: 604, At: time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("order.Codec.Decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := order.Codec.Decode(order.TypePlaced, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var p order.Placed
			if err := json.Unmarshal(data, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
