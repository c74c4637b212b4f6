package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/orderflow/orderflow/domain"
)

// inputHygiene refuses a GraphQL operation any of whose string arguments (inline or in variables)
// is not valid UTF-8 or holds a control character other than tab, line feed and carriage return:
// BAD_USER_INPUT naming the argument, before any resolver runs. Command arguments are checked
// again, field by field, by the domain; this keeps NUL bytes away from the query services too.
var inputHygiene = operationCheck{name: "InputHygiene", check: cleanOperation}

func cleanOperation(oc *graphql.OperationContext) *gqlerror.Error {
	for name, v := range oc.Variables {
		if path, ok := cleanValue(v, "$"+name); !ok {
			return badInput(path)
		}
	}
	if oc.Doc == nil {
		return nil
	}
	var bad string
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			if bad != "" {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				for _, a := range s.Arguments {
					if !cleanLiteral(a.Value) {
						bad = s.Name + "(" + a.Name + ")"
						return
					}
				}
				walk(s.SelectionSet)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			}
		}
	}
	for _, op := range oc.Doc.Operations {
		walk(op.SelectionSet)
	}
	for _, f := range oc.Doc.Fragments {
		walk(f.SelectionSet)
	}
	if bad != "" {
		return badInput(bad)
	}
	return nil
}

func badInput(where string) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf("%s: text must be valid UTF-8 without control characters", where),
		Extensions: map[string]any{"code": CodeBadUserInput, "field": where}}
}

// cleanText reports whether s is valid UTF-8 without control characters but tab, LF and CR.
func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
	})
}

// cleanValue checks every string in a decoded JSON value; it answers the path of the first bad one.
func cleanValue(v any, path string) (string, bool) {
	switch v := v.(type) {
	case string:
		return path, cleanText(v)
	case []any:
		for i, e := range v {
			if p, ok := cleanValue(e, fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
	case map[string]any:
		for k, e := range v {
			if !cleanText(k) {
				return path, false
			}
			if p, ok := cleanValue(e, path+"."+k); !ok {
				return p, false
			}
		}
	}
	return path, true
}

// cleanLiteral checks every string of an inline argument value.
func cleanLiteral(v *ast.Value) bool {
	if v == nil {
		return true
	}
	if (v.Kind == ast.StringValue || v.Kind == ast.BlockValue) && !cleanText(v.Raw) {
		return false
	}
	for _, c := range v.Children {
		if !cleanLiteral(c.Value) {
			return false
		}
	}
	return true
}

// operationCheck is a gqlgen extension that refuses an operation, before any resolver runs, when
// check answers an error.
type operationCheck struct {
	name  string
	check func(*graphql.OperationContext) *gqlerror.Error
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = operationCheck{}

func (c operationCheck) ExtensionName() string                 { return c.name }
func (operationCheck) Validate(graphql.ExecutableSchema) error { return nil }
func (c operationCheck) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	return c.check(oc)
}

// idArguments refuses an operation any of whose ID arguments (inline, in variables, or inside an
// input object such as PlaceOrderInput's lines) is not an identifier of the safe set
// (domain.CheckID): BAD_USER_INPUT naming it, before any resolver runs, as REST answers 422. A
// query for "a/b" or an id with a bidi override so never reaches a service.
type idArguments struct{ schema *ast.Schema }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = &idArguments{}

func (*idArguments) ExtensionName() string { return "IDArguments" }

func (c *idArguments) Validate(s graphql.ExecutableSchema) error {
	c.schema = s.Schema()
	return nil
}

func (c *idArguments) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	var bad *gqlerror.Error
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			if bad != nil {
				return
			}
			switch s := sel.(type) {
			case *ast.Field:
				for _, a := range s.Arguments {
					if a.Value == nil || a.Value.ExpectedType == nil {
						continue
					}
					v, err := a.Value.Value(oc.Variables)
					if err != nil {
						continue // gqlgen refuses it itself
					}
					if where, why := c.badID(v, a.Value.ExpectedType, s.Name+"("+a.Name+")"); where != "" {
						bad = &gqlerror.Error{Message: where + ": " + why, Extensions: map[string]any{"code": CodeBadUserInput, "field": where}}
						return
					}
				}
				walk(s.SelectionSet)
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Definition != nil {
					walk(s.Definition.SelectionSet)
				}
			}
		}
	}
	walk(oc.Operation.SelectionSet)
	return bad
}

// badID answers where in v (of GraphQL type t) an ID breaks the safe set, and why; "" if none.
func (c *idArguments) badID(v any, t *ast.Type, path string) (string, string) {
	if v == nil || t == nil {
		return "", ""
	}
	if t.Elem != nil {
		list, _ := v.([]any)
		for i, e := range list {
			if where, why := c.badID(e, t.Elem, fmt.Sprintf("%s[%d]", path, i)); where != "" {
				return where, why
			}
		}
		return "", ""
	}
	if t.NamedType == "ID" {
		s, ok := v.(string)
		if !ok {
			return "", ""
		}
		if err := domain.CheckID(path, s); err != nil {
			var rule *domain.RuleError
			if errors.As(err, &rule) {
				return path, rule.Reason
			}
			return path, err.Error()
		}
		return "", ""
	}
	def := c.schema.Types[t.NamedType]
	obj, ok := v.(map[string]any)
	if def == nil || def.Kind != ast.InputObject || !ok {
		return "", ""
	}
	for _, f := range def.Fields {
		if where, why := c.badID(obj[f.Name], f.Type, path+"."+f.Name); where != "" {
			return where, why
		}
	}
	return "", ""
}
