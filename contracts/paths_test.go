package contracts

import (
	"reflect"
	"testing"
)

func TestPaths(t *testing.T) {
	v, _ := Decode([]byte(`{"id":"o","lines":[{"p":"a","q":1},{"p":"b","q":2}],"tags":["x"],"m":[[{"z":1}]],"a":{"b":{"c":true}}}`))
	if got, want := Leaves(v), []string{"$.a.b.c", "$.id", "$.lines[*].p", "$.lines[*].q", "$.m", "$.tags"}; !reflect.DeepEqual(got, want) {
		t.Errorf("leaves %v", got)
	}
	if got := steps("$.lines[*].p"); !reflect.DeepEqual(got, []string{"lines", "[*]", "p"}) {
		t.Errorf("steps %v", got)
	}
	if got := steps("$[*].p"); !reflect.DeepEqual(got, []string{"[*]", "p"}) {
		t.Errorf("steps %v", got)
	}
	w := Without(v, "$.lines[*].q")
	if vals, miss := At(w, "$.lines[*].q"); miss == "" {
		t.Errorf("without: %v", vals)
	}
	if vals, miss := At(w, "$.lines[*].p"); miss != "" || len(vals) != 2 {
		t.Errorf("at: %v %s", vals, miss)
	}
	only := Only(v, []string{"$.a.b.c", "$.lines[*].p"})
	if got := Leaves(only); !reflect.DeepEqual(got, []string{"$.a.b.c", "$.lines[*].p"}) {
		t.Errorf("only %v", got)
	}
	ans, _ := Decode([]byte(`{"a":{"b":{"c":"yes"}},"lines":[{"q":1}]}`))
	if got := Mismatches(v, ans, byType([]string{"$.a.b.c", "$.lines[*].p", "$.id"}), nil); len(got) != 3 {
		t.Errorf("mismatches %v", got)
	}
	if got := Mismatches(v, v, byType(Leaves(v)), nil); len(got) != 0 {
		t.Errorf("self: %v", got)
	}
	if got := Mismatches(v, ans, byType([]string{"$.id"}), []string{"$.id"}); len(got) != 0 {
		t.Errorf("optional: %v", got)
	}
	// Below an optional object that is absent, nothing is missing; below one that is there, it is.
	if got := Mismatches(v, ans, byType([]string{"$.x.y"}), []string{"$.x"}); len(got) != 0 {
		t.Errorf("below an absent optional: %v", got)
	}
	if got := Mismatches(v, ans, byType([]string{"$.a.b.d"}), []string{"$.a.b"}); len(got) != 1 {
		t.Errorf("below a present optional: %v", got)
	}
}
