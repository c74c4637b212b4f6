// Package commandstest helps the tests of command services and of what they feed.
package commandstest

import (
	"testing"

	"github.com/orderflow/orderflow/wire"
)

// Must fails the test if the command it is given failed, and answers its reply:
// Must(t)(h.Restock(ctx, req)).
func Must(t testing.TB) func(wire.CommandReply, error) wire.CommandReply {
	return func(r wire.CommandReply, err error) wire.CommandReply {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// Meta is the metadata of a command with id.
func Meta(id string) wire.CommandMeta { return wire.CommandMeta{CommandID: id} }
