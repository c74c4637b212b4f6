package wire

// The payment command service and its endpoints, relative to a Namespace.
const (
	ServicePaymentCommands   = "payment-commands"
	EndpointAuthorizePayment = "payment.authorize" // AuthorizePayment → CommandReply; queued by the saga
	EndpointCapturePayment   = "payment.capture"   // IDCommand (the payment) → CommandReply
	EndpointVoidPayment      = "payment.void"      // IDCommand (the payment) → CommandReply; queued by the saga
	EndpointRefundPayment    = "payment.refund"    // RefundPayment → CommandReply
	EndpointPaymentProvider  = "payment.provider"  // {} → ProviderStatus
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
