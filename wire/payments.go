package wire

// The payment command service.
const ServicePaymentCommands = "payment-commands"

// Endpoints of the payment service, relative to a Namespace.
const (
	// EndpointAuthorizePayment: AuthorizePayment → CommandReply; queued by the fulfillment saga.
	EndpointAuthorizePayment = "payment.authorize"
	// EndpointCapturePayment: IDCommand (the payment) → CommandReply.
	EndpointCapturePayment = "payment.capture"
	// EndpointVoidPayment: IDCommand (the payment) → CommandReply; queued by the fulfillment saga.
	EndpointVoidPayment = "payment.void"
	// EndpointRefundPayment: RefundPayment → CommandReply.
	EndpointRefundPayment = "payment.refund"
	// EndpointPaymentProvider: {} → ProviderStatus.
	EndpointPaymentProvider = "payment.provider"
)

// AuthorizePayment asks the card provider to authorize an order's amount.
type AuthorizePayment struct {
	Meta        CommandMeta `json:"meta"`
	PaymentID   string      `json:"paymentId"`
	OrderID     string      `json:"orderId"`
	AmountCents int64       `json:"amountCents"`
}

// RefundPayment refunds part or all of a captured payment.
type RefundPayment struct {
	Meta        CommandMeta `json:"meta"`
	PaymentID   string      `json:"paymentId"`
	AmountCents int64       `json:"amountCents"`
}

// ProviderStatus is the card provider's circuit breaker as the payment service sees it.
type ProviderStatus struct {
	Configured bool   `json:"configured"`
	Breaker    string `json:"breaker,omitempty"` // closed, half-open or open
}
