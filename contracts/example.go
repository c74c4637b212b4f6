package contracts

import (
	"reflect"
	"strings"
	"time"
)

// ExampleTime is every time of an Example.
var ExampleTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Example is a value of type t with every field filled, so that a consumer's test can find what
// the consumer reads of it: hook, if it answers, gives the value of a field (by its JSON name, ""
// for an element) of a type; else strings are the field's name with "-1", numbers 3, booleans
// true, times ExampleTime, and slices and maps hold one element. Hook learns the struct the field
// is in (nil for an element or the whole).
func Example(t reflect.Type, hook func(in, t reflect.Type, name string) (reflect.Value, bool)) reflect.Value {
	return example(nil, t, "", hook)
}

func example(in, t reflect.Type, name string, hook func(in, t reflect.Type, name string) (reflect.Value, bool)) reflect.Value {
	if v, ok := hook(in, t, name); ok {
		return v
	}
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		p.Elem().Set(example(in, t.Elem(), name, hook))
		v.Set(p)
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(ExampleTime))
			break
		}
		for i := range t.NumField() {
			if f, json := field(t, i); json != "" {
				v.Field(i).Set(example(t, f.Type, json, hook))
			}
		}
	case reflect.Slice:
		v = reflect.Append(v, example(nil, t.Elem(), strings.TrimSuffix(name, "s"), hook))
	case reflect.Map:
		v = reflect.MakeMap(t)
		v.SetMapIndex(reflect.ValueOf("key-1").Convert(t.Key()), example(nil, t.Elem(), "", hook))
	case reflect.String:
		v.SetString(name + "-1")
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Bool:
		v.SetBool(true)
	}
	return v
}

// field is field i of struct t and its JSON name ("" if JSON leaves it out).
func field(t reflect.Type, i int) (reflect.StructField, string) {
	f := t.Field(i)
	json, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if !f.IsExported() || json == "-" {
		return f, ""
	}
	if json == "" {
		json = f.Name
	}
	return f, json
}

// Optional are the paths of type t's JSON form a provider may leave out: its omitempty fields
// and pointers.
func Optional(t reflect.Type) []string { return optional(t, "$") }

func optional(t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			if t.Elem().Kind() != reflect.Struct {
				return nil
			}
			path += "[*]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f, json := field(t, i)
		if json == "" {
			continue
		}
		p := path + "." + json
		if strings.Contains(f.Tag.Get("json"), ",omitempty") || f.Type.Kind() == reflect.Pointer {
			out = append(out, p)
		}
		out = append(out, optional(f.Type, p)...)
	}
	return out
}
