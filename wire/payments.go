package wire

// The payment command service and its endpoints, relative to a Namespace.
const (
	ServicePaymentCommands = "payment-commands"
)

var (
	EndpointAuthorizePayment = endpoint[AuthorizePayment, CommandReply](ServicePaymentCommands, "payment.authorize") // queued by the saga
	EndpointCapturePayment   = endpoint[IDCommand, CommandReply](ServicePaymentCommands, "payment.capture")          // ID: the payment
	EndpointVoidPayment      = endpoint[IDCommand, CommandReply](ServicePaymentCommands, "payment.void")             // ID: the payment; queued by the saga
	EndpointRefundPayment    = endpoint[RefundPayment, CommandReply](ServicePaymentCommands, "payment.refund")
	EndpointPaymentProvider  = endpoint[struct{}, ProviderStatus](ServicePaymentCommands, "payment.provider")
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
