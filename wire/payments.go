package wire

// The payment command service.
const ServicePaymentCommands = "payment-commands"

// Endpoints of the payment service, relative to a Namespace.
const (
	EndpointAuthorizePayment = "payment.authorize"
	EndpointCapturePayment   = "payment.capture"
	EndpointVoidPayment      = "payment.void"
	EndpointRefundPayment    = "payment.refund"
	EndpointPaymentProvider  = "payment.provider"
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
