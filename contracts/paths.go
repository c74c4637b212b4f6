package contracts

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// A path names values in a JSON document the way Pact's matching rules do: "$" is the document,
// ".name" a member, "[*]" every element of an array ("$.lines[*].productId"). An array of
// scalars, an empty array or object and a scalar are leaves.

// Leaves are the paths of v's leaves, sorted.
func Leaves(v any) []string {
	set := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				set[path] = true
			}
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			objects := false
			for _, x := range v {
				if _, ok := x.(map[string]any); ok {
					objects = true
					walk(path+"[*]", x)
				}
			}
			if !objects {
				set[path] = true
			}
		default:
			set[path] = true
		}
	}
	walk("$", v)
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// steps splits a path into members, "[*]" standing for every element.
func steps(path string) []string {
	var out []string
	for _, member := range strings.Split(strings.TrimPrefix(path, "$"), ".") {
		name, arrays, _ := strings.Cut(member, "[")
		if name != "" {
			out = append(out, name)
		}
		for range strings.Count("["+arrays, "[*]") {
			out = append(out, "[*]")
		}
	}
	return out
}

// Without is a copy of v without what path names (in every element, through "[*]").
func Without(v any, path string) any {
	var cut func(v any, steps []string) any
	cut = func(v any, steps []string) any {
		if len(steps) == 0 {
			return v
		}
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, y := range x {
				if k != steps[0] {
					out[k] = y
				} else if len(steps) > 1 {
					out[k] = cut(y, steps[1:])
				}
			}
			return out
		case []any:
			if steps[0] != "[*]" {
				return x
			}
			out := make([]any, len(x))
			for i, y := range x {
				out[i] = cut(y, steps[1:])
			}
			return out
		}
		return v
	}
	return cut(v, steps(path))
}

// At are the values path names in v; missing says where one is absent.
func At(v any, path string) (values []any, missing string) {
	values = []any{v}
	at := "$"
	for _, s := range steps(path) {
		var next []any
		for _, x := range values {
			if s == "[*]" {
				a, ok := x.([]any)
				if !ok {
					return nil, at + " is not an array"
				}
				next = append(next, a...)
				continue
			}
			m, ok := x.(map[string]any)
			if !ok {
				return nil, at + " is not an object"
			}
			y, ok := m[s]
			if !ok {
				return nil, at + "." + s + " is missing"
			}
			next = append(next, y)
		}
		if s == "[*]" {
			at += "[*]"
		} else {
			at += "." + s
		}
		values = next
	}
	return values, ""
}

// kind is a JSON value's type, as a consumer relies on it.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64, json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Mismatches are the paths of rules that answer lacks (unless optional) or holds with another
// type than example (null in either: any type): the ways answer breaks a consumer that reads
// those paths.
func Mismatches(example, answer any, rules *Rules, optional []string) []string {
	var out []string
	for _, p := range rules.Paths() {
		want, _ := At(example, p)
		got, missing := At(answer, p)
		if missing != "" && slices.Contains(optional, strings.TrimSuffix(missing, " is missing")) {
			continue // absent, and it may be: so is all below it
		}
		if missing != "" {
			out = append(out, p+": "+missing)
			continue
		}
		if len(want) == 0 || kind(want[0]) == "null" {
			continue
		}
		for _, g := range got {
			if k := kind(g); k != "null" && k != kind(want[0]) {
				out = append(out, fmt.Sprintf("%s: a %s, the consumer reads a %s", p, k, kind(want[0])))
				break
			}
		}
	}
	return out
}

// Decode parses JSON into plain values (maps, slices, float64, …).
func Decode(b []byte) (any, error) {
	var v any
	err := json.Unmarshal(b, &v)
	return v, err
}

// Only is example reduced to the paths given (and what holds them): what a contract keeps of an
// answer or a message, the parts a consumer reads.
func Only(example any, paths []string) any {
	keep := map[string]bool{}
	for _, p := range paths {
		keep[p] = true
	}
	out := example
	for _, leaf := range Leaves(example) {
		if !keep[leaf] {
			out = Without(out, leaf)
		}
	}
	return prune(out)
}

// prune drops the objects emptied by Only.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, y := range x {
			y = prune(y)
			if m, ok := y.(map[string]any); ok && len(m) == 0 {
				continue
			}
			out[k] = y
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, y := range x {
			out[i] = prune(y)
		}
		return out
	}
	return v
}
