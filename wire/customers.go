package wire

import "time"

// The customer services.
const (
	ServiceCustomerCommands = "customer-commands"
	ServiceCustomerQueries  = "customer-queries"
)

// Endpoints of the customer services, relative to a Namespace.
const (
	// EndpointRegisterCustomer: RegisterCustomer → CommandReply.
	EndpointRegisterCustomer = "customer.register"
	// EndpointChangeAddress: ChangeAddress → CommandReply.
	EndpointChangeAddress = "customer.change_address"
	// EndpointDeactivateCustomer: IDCommand (the customer) → CommandReply.
	EndpointDeactivateCustomer = "customer.deactivate"

	// EndpointCustomerByID: CustomerByID → Customer.
	EndpointCustomerByID = "customers.get"
	// EndpointCustomersByIDs: CustomersByIDs → []Customer.
	EndpointCustomersByIDs = "customers.get_many"
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

// Customer is the customers read model's view of a customer.
type Customer struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	Email              string    `json:"email"`
	Address            Address   `json:"shippingAddress"`
	Active             bool      `json:"active"`
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
