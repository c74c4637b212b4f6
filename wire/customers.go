package wire

import "time"

// The customer services and their endpoints, relative to a Namespace.
const (
	ServiceCustomerCommands = "customer-commands"
	ServiceCustomerQueries  = "customer-queries"
)

var (
	EndpointRegisterCustomer   = endpoint[RegisterCustomer, CommandReply](ServiceCustomerCommands, "customer.register")
	EndpointChangeAddress      = endpoint[ChangeAddress, CommandReply](ServiceCustomerCommands, "customer.change_address")
	EndpointDeactivateCustomer = endpoint[IDCommand, CommandReply](ServiceCustomerCommands, "customer.deactivate") // ID: the customer
	EndpointEraseCustomer      = endpoint[IDCommand, Erasure](ServiceCustomerCommands, "customer.erase")           // ID: the customer; admins only
	EndpointCustomerErasure    = endpoint[CustomerByID, Erasure](ServiceCustomerCommands, "customer.erasure")      // not found: not erased; admins only
	// EndpointCustomerStanding is where the order service learns whether a customer may order
	// (StandingOf → CustomerStanding); services only.
	EndpointCustomerStanding = endpoint[StandingOf, CustomerStanding](ServiceCustomerCommands, "customer.standing")

	EndpointCustomersByIDs = endpoint[CustomersByIDs, []Customer](ServiceCustomerQueries, "customers.get_many")
	EndpointCustomerByID   = endpoint[CustomerByID, Customer](ServiceCustomerQueries, "customers.get")
)

// Address is a shipping address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
}

// RegisterCustomer registers a customer; the e-mail address must be free.
type RegisterCustomer struct {
	Meta       CommandMeta `json:"meta"`
	CustomerID string      `json:"customerId"`
	Name       string      `json:"name"`
	Email      string      `json:"email"`
	Address    Address     `json:"shippingAddress"`
}

// ChangeAddress changes a customer's shipping address.
type ChangeAddress struct {
	Meta       CommandMeta `json:"meta"`
	CustomerID string      `json:"customerId"`
	Address    Address     `json:"shippingAddress"`
}

// CustomerStanding is what the customer service knows of a customer's account now: registered or
// not, and if so whether still active (not deactivated, not erased).
type CustomerStanding struct {
	CustomerID string `json:"customerId"`
	Registered bool   `json:"registered"`
	Active     bool   `json:"active"`
	// Why the account is not active: "deactivated" or "erased".
	Closed string `json:"closed,omitempty"`
	// Basis is what it was answered from: the customer's stream at its revision.
	Basis []StreamAt `json:"basis,omitempty"`
}

// StandingOf asks for a customer's standing. Proven asks for one checked current against the
// event store; without it, the service may answer from what it holds (see QuoteProducts).
type StandingOf struct {
	ID     string `json:"id"`
	Proven bool   `json:"proven,omitempty"`
}

// Customer is the customers read model's view of a customer.
type Customer struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Email   string  `json:"email"`
	Address Address `json:"shippingAddress"`
	Active  bool    `json:"active"`
	// Erased: the customer's personal data was erased; Name, Email and Address read redacted.
	Erased             bool      `json:"erased,omitempty"`
	RegisteredAt       time.Time `json:"registeredAt"`
	OrderCount         int64     `json:"orderCount"`
	LifetimeSpendCents int64     `json:"lifetimeSpendCents"`
}

// CustomersByIDs asks for many customers at once; unknown ids are left out.
type CustomersByIDs struct {
	IDs         []string `json:"ids"`
	MinPosition string   `json:"minPosition,omitempty"`
}

// CustomerByID asks for one customer.
type CustomerByID struct {
	ID          string `json:"id"`
	MinPosition string `json:"minPosition,omitempty"`
}

// Erasure is the receipt of a customer's erasure: what was erased, where, when and by whom.
type Erasure struct {
	CustomerID string `json:"customerId"`
	// ErasedAt is when the erasure was recorded; ErasedBy, who asked ("admin:<subject>").
	ErasedAt time.Time `json:"erasedAt"`
	ErasedBy string    `json:"erasedBy"`
	// Fields are the personal fields erased, in every event of the customer's.
	Fields []string `json:"fields"`
	// Streams are the event streams whose events held them: they now read redacted.
	Streams []string `json:"streams"`
	// KeyDestroyedAt is when the customer's data key was destroyed (the key store keeps that, and
	// no key); zero if an erasure was cut short before it: erasing again completes it.
	KeyDestroyedAt time.Time `json:"keyDestroyedAt"`
	// ReadModels are the read models that held copies and redact them on the erasure's event.
	ReadModels []string `json:"readModels"`
	// Position is the erasure event's position in the log: a read model at or past it holds no
	// personal data of the customer.
	Position string `json:"position"`
}
