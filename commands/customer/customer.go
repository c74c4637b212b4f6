// Package customer is the customer command service: register (with a unique e-mail address),
// change address, deactivate. Served on NATS micro.
package customer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands"
	model "github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Handlers carries out customer commands.
type Handlers struct {
	Store eventstore.Store
	Now   func() time.Time
}

var aggregate = commands.Aggregate[model.State, model.Event]{Evolve: model.Evolve, Decode: model.Codec.Decode, Encode: model.Codec.Encode}

func (h Handlers) execute(ctx context.Context, id string, meta commands.Meta, c model.Command) (wire.CommandReply, error) {
	if err := model.Validate(c); err != nil { // before the stream is loaded: its name holds the id
		return wire.CommandReply{}, err
	}
	now := commands.Now(h.Now)
	return commands.Answer(ctx, h.Store, aggregate, model.Stream(id), id, meta, func(s model.State) ([]model.Event, error) {
		return model.Decide(s, c, now)
	})
}

func address(a wire.Address) model.Address { return model.Address(a) }

// Register registers a customer. The e-mail address is claimed first, on its own stream: of two
// registrations with one address, exactly one succeeds (model.ErrEmailTaken for the other).
// Safe to retry by command id.
func (h Handlers) Register(ctx context.Context, req wire.RegisterCustomer) (wire.CommandReply, error) {
	if err := auth.Act(ctx, req.CustomerID); err != nil {
		return wire.CommandReply{}, err
	}
	c := model.Register{CustomerID: req.CustomerID, Name: req.Name, Email: req.Email, Address: address(req.Address)}
	if _, err := model.Decide(model.State{}, c, time.Now()); err != nil {
		return wire.CommandReply{}, err // validate before claiming anything
	}
	email := model.NormalizeEmail(req.Email)
	claim := model.EmailClaimed{Email: email, CustomerID: req.CustomerID}
	if err := commands.Claim(ctx, h.Store, model.EmailStream(email), claim, req.CustomerID, req.Meta, model.ErrEmailTaken); err != nil {
		return wire.CommandReply{}, err
	}
	return h.execute(ctx, req.CustomerID, req.Meta, c)
}

// ChangeAddress changes a customer's shipping address.
func (h Handlers) ChangeAddress(ctx context.Context, req wire.ChangeAddress) (wire.CommandReply, error) {
	if err := auth.Act(ctx, req.CustomerID); err != nil {
		return wire.CommandReply{}, err
	}
	return h.execute(ctx, req.CustomerID, req.Meta, model.ChangeAddress{CustomerID: req.CustomerID, Address: address(req.Address)})
}

// Deactivate deactivates a customer.
func (h Handlers) Deactivate(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return h.execute(ctx, req.ID, req.Meta, model.Deactivate{CustomerID: req.ID})
}

// Register serves the handlers as the customer-commands NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, h Handlers) (micro.Service, error) {
	svc := rpc.Service{Name: wire.ServiceCustomerCommands, Description: "registers and changes customers",
		Namespace: ns, Limits: rpc.CommandLimits, Classify: pgerr.Classify(commands.Classify)}
	return svc.Serve(ctx, nc, log,
		rpc.On("register", wire.EndpointRegisterCustomer, h.Register),
		rpc.On("change_address", wire.EndpointChangeAddress, h.ChangeAddress),
		rpc.Staff(rpc.On("deactivate", wire.EndpointDeactivateCustomer, h.Deactivate)),
	)
}
