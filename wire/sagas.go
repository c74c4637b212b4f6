package wire

import "time"

// The sagas' query service and its endpoints.
const (
	ServiceSagas = "sagas"
)

var (
	EndpointFulfillment       = endpoint[FulfillmentByOrder, Fulfillment](ServiceSagas, "sagas.fulfillment.get")
	EndpointFulfillments      = endpoint[ListFulfillments, []Fulfillment](ServiceSagas, "sagas.fulfillment.list")
	EndpointFulfillmentsByIDs = endpoint[FulfillmentsByOrders, []Fulfillment](ServiceSagas, "sagas.fulfillment.get_many")
	EndpointFulfillmentCounts = endpoint[struct{}, FulfillmentCounts](ServiceSagas, "sagas.fulfillment.counts")
)

// Fulfillment is an order's fulfillment saga, as operators and frontends see it.
type Fulfillment struct {
	OrderID   string     `json:"orderId"`
	Step      string     `json:"step"`
	Outcome   string     `json:"outcome,omitempty"`
	Attempts  int64      `json:"attempts"`
	Deadline  *time.Time `json:"deadline,omitempty"`
	LastError string     `json:"lastError,omitempty"`
	// Retries: re-sends of the current step's commands. Awaiting: compensations sent and not yet
	// done. Stuck: the saga stopped re-sending and waits for an operator.
	Retries           int       `json:"retries,omitempty"`
	Awaiting          []string  `json:"awaiting,omitempty"`
	Stuck             bool      `json:"stuck,omitempty"`
	StockHeld         bool      `json:"stockHeld"`
	PaymentAuthorized bool      `json:"paymentAuthorized"`
	StartedAt         time.Time `json:"startedAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	// Decisions are what the saga decided, oldest first (the latest 50): the steps it took, the
	// commands it sent and re-sent, when it parked itself.
	Decisions []FulfillmentDecision `json:"decisions,omitempty"`
	// CorrelationID and TraceParent are the flow the saga continues: the placing request's.
	CorrelationID string `json:"correlationId,omitempty"`
	TraceParent   string `json:"traceparent,omitempty"`
	// StartedBy is who placed the order; Actor who the saga's commands say asked (the saga).
	StartedBy string `json:"startedBy,omitempty"`
	Actor     string `json:"actor,omitempty"`
}

// FulfillmentDecision is one decision of a saga.
type FulfillmentDecision struct {
	At   time.Time `json:"at"`
	Step string    `json:"step"`
	// Sent are the endpoints of the commands it sent (Retry > 0: a re-send of the step's).
	Sent  []string `json:"sent,omitempty"`
	Retry int      `json:"retry,omitempty"`
	Stuck bool     `json:"stuck,omitempty"`
	// Error is the saga's last error, when the decision is about it.
	Error string `json:"error,omitempty"`
}

// FulfillmentByOrder asks for one order's saga.
type FulfillmentByOrder struct {
	OrderID     string `json:"orderId"`
	MinPosition string `json:"minPosition,omitempty"`
}

// FulfillmentsByOrders asks for the sagas of many orders (those that have none are left out).
type FulfillmentsByOrders struct {
	OrderIDs    []string `json:"orderIds"`
	MinPosition string   `json:"minPosition,omitempty"`
}

// ListFulfillments asks for the latest sagas, optionally in one step, optionally only stuck ones.
type ListFulfillments struct {
	Step  string `json:"step,omitempty"`
	First int    `json:"first,omitempty"`
	Stuck bool   `json:"stuck,omitempty"`
}

// FulfillmentCounts are the saga's figures: in flight and finished by outcome.
type FulfillmentCounts struct {
	InFlight    int64 `json:"inFlight"`
	Confirmed   int64 `json:"confirmed"`
	Compensated int64 `json:"compensated"`
	TimedOut    int64 `json:"timedOut"`
	Stuck       int64 `json:"stuck"`
	Outbox      int64 `json:"outbox"`
}
