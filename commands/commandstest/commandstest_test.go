package commandstest_test

import (
	"testing"

	"github.com/orderflow/orderflow/commands/commandstest"
	"github.com/orderflow/orderflow/wire"
)

func TestMustAnswersTheReplyOfACommandCarriedOut(t *testing.T) {
	want := wire.CommandReply{ID: "p-1", Position: "12/12"}
	if got := commandstest.Must(t)(want, nil); got != want {
		t.Fatalf("Must answered %+v, want %+v", got, want)
	}
	if m := commandstest.Meta("c-1"); m.CommandID != "c-1" {
		t.Fatalf("Meta = %+v", m)
	}
}
