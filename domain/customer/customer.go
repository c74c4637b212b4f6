// Package customer owns the customer aggregate: registration, shipping address, deactivation,
// and the rule that an e-mail address belongs to one customer.
package customer

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// Errors of the customer lifecycle.
var (
	ErrNotFound          = fmt.Errorf("customer %w", domain.ErrNotFound)
	ErrAlreadyRegistered = fmt.Errorf("customer already registered: %w", domain.ErrConflict)
	ErrDeactivated       = fmt.Errorf("customer is deactivated: %w", domain.ErrConflict)
	ErrEmailTaken        = fmt.Errorf("e-mail address already registered: %w", domain.ErrConflict)
)

// Stream is the event stream of customer id.
func Stream(id string) string { return "customer-" + id }

// EmailStream is the stream that records which customer holds e-mail address email (normalized).
// Appending its first event with "no stream" expected is how two registrations race fairly:
// exactly one wins, without a shared table.
func EmailStream(email string) string { return "customer_email-" + NormalizeEmail(email) }

// NormalizeEmail is the form in which e-mail addresses are compared.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// Address is a shipping address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
}

// Commands.
type (
	Register struct {
		CustomerID, Name, Email string
		Address                 Address
	}
	ChangeAddress struct {
		CustomerID string
		Address    Address
	}
	Deactivate struct{ CustomerID string }
)

// Command is one of the commands above.
type Command interface{ isCommand() }

func (Register) isCommand()      {}
func (ChangeAddress) isCommand() {}
func (Deactivate) isCommand()    {}

// Event type names: a stored contract.
const (
	TypeRegistered     = "customer.registered.v1"
	TypeAddressChanged = "customer.address_changed.v1"
	TypeDeactivated    = "customer.deactivated.v1"
	TypeEmailClaimed   = "customer.email_claimed.v1"
	TypePrefix         = "customer."
)

// Events.
type (
	Registered struct {
		CustomerID string    `json:"customerId"`
		Name       string    `json:"name"`
		Email      string    `json:"email"`
		Address    Address   `json:"shippingAddress"`
		At         time.Time `json:"at"`
	}
	AddressChanged struct {
		CustomerID string    `json:"customerId"`
		Address    Address   `json:"shippingAddress"`
		At         time.Time `json:"at"`
	}
	Deactivated struct {
		CustomerID string    `json:"customerId"`
		At         time.Time `json:"at"`
	}
	// EmailClaimed is the only event of an EmailStream.
	EmailClaimed struct {
		Email      string `json:"email"`
		CustomerID string `json:"customerId"`
	}
)

// Event is a customer event.
type Event interface{ EventType() string }

func (Registered) EventType() string     { return TypeRegistered }
func (AddressChanged) EventType() string { return TypeAddressChanged }
func (Deactivated) EventType() string    { return TypeDeactivated }
func (EmailClaimed) EventType() string   { return TypeEmailClaimed }

// State of a customer.
type State struct {
	ID          string
	Email       string
	Registered  bool
	Deactivated bool
}

// Decide returns the events of command c in state s, or why it cannot be carried out. Pure.
func Decide(s State, c Command, now time.Time) ([]Event, error) {
	now = now.UTC()
	switch c := c.(type) {
	case Register:
		if err := validateRegister(c); err != nil {
			return nil, err
		}
		if s.Registered {
			return nil, ErrAlreadyRegistered
		}
		return []Event{Registered{CustomerID: c.CustomerID, Name: strings.TrimSpace(c.Name), Email: NormalizeEmail(c.Email), Address: c.Address, At: now}}, nil
	case ChangeAddress:
		if err := validateAddress(c.Address); err != nil {
			return nil, err
		}
		if err := active(s); err != nil {
			return nil, err
		}
		return []Event{AddressChanged{CustomerID: s.ID, Address: c.Address, At: now}}, nil
	case Deactivate:
		if err := active(s); err != nil {
			return nil, err
		}
		return []Event{Deactivated{CustomerID: s.ID, At: now}}, nil
	}
	return nil, fmt.Errorf("customer: unknown command %T", c)
}

func active(s State) error {
	switch {
	case !s.Registered:
		return ErrNotFound
	case s.Deactivated:
		return ErrDeactivated
	}
	return nil
}

// Evolve returns the state after e.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Registered:
		s.ID, s.Email, s.Registered = e.CustomerID, e.Email, true
	case Deactivated:
		s.Deactivated = true
	}
	return s
}

func validateRegister(c Register) error {
	switch {
	case domain.IsBlank(c.CustomerID) || len(c.CustomerID) > 100:
		return domain.Rule("customerId", "is required, at most 100 characters")
	case domain.IsBlank(c.Name) || len(c.Name) > 200:
		return domain.Rule("name", "is required, at most 200 characters")
	}
	if err := ValidateEmail(c.Email); err != nil {
		return err
	}
	return validateAddress(c.Address)
}

// ValidateEmail checks that email is one plain address.
func ValidateEmail(email string) error {
	e := NormalizeEmail(email)
	a, err := mail.ParseAddress(e)
	if e == "" || len(e) > 254 || err != nil || a.Address != e || !strings.Contains(e[strings.LastIndex(e, "@")+1:], ".") {
		return domain.Rule("email", "must be an e-mail address such as ada@example.com")
	}
	return nil
}

func validateAddress(a Address) error {
	field := func(name, v string, max int) error {
		if domain.IsBlank(v) || len(v) > max {
			return domain.Rule("shippingAddress."+name, fmt.Sprintf("is required, at most %d characters", max))
		}
		return nil
	}
	for _, f := range []error{field("line1", a.Line1, 200), field("city", a.City, 100), field("postalCode", a.PostalCode, 20)} {
		if f != nil {
			return f
		}
	}
	if len(a.Line2) > 200 {
		return domain.Rule("shippingAddress.line2", "must be at most 200 characters")
	}
	if len(a.Country) != 2 || strings.ToUpper(a.Country) != a.Country {
		return domain.Rule("shippingAddress.country", "must be an ISO 3166 alpha-2 code such as FR")
	}
	return nil
}

// Encode returns e's type and JSON payload.
func Encode(e Event) (string, []byte, error) {
	data, err := json.Marshal(e)
	return e.EventType(), data, err
}

// Decode parses a stored customer event.
func Decode(typ string, data []byte) (Event, error) {
	switch typ {
	case TypeRegistered:
		return domain.DecodeAs[Registered](typ, data)
	case TypeAddressChanged:
		return domain.DecodeAs[AddressChanged](typ, data)
	case TypeDeactivated:
		return domain.DecodeAs[Deactivated](typ, data)
	case TypeEmailClaimed:
		return domain.DecodeAs[EmailClaimed](typ, data)
	}
	return nil, fmt.Errorf("customer: unknown event type %q", typ)
}
