// Package customer is the customer command service: register (with a unique e-mail address),
// change address, deactivate. Served on NATS micro.
package customer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/domain"
	model "github.com/orderflow/orderflow/domain/customer"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/personal"
	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Handlers carries out customer commands.
type Handlers struct {
	// Writer carries out the commands on customers' streams.
	Writer *commands.Writer
	// Store is the event store itself, for reading a customer's history.
	Store eventstore.Store
	// Keys holds the customers' data keys (personal.Protect over Store uses the same): Erase
	// destroys one.
	Keys personal.Keys
	Now  func() time.Time
}

var aggregate = commands.NewDecider(model.Codec, model.Evolve, model.Stream, model.Validate, model.Decide)

func address(a wire.Address) model.Address { return model.Address(a) }

// Register registers a customer. The e-mail address is claimed first, on its own stream: of two
// registrations with one address, exactly one succeeds (model.ErrEmailTaken for the other).
// Safe to retry by command id.
func (h Handlers) Register(ctx context.Context, req wire.RegisterCustomer) (wire.CommandReply, error) {
	if err := auth.Act(ctx, req.CustomerID); err != nil {
		return wire.CommandReply{}, err
	}
	c := model.Register{CustomerID: req.CustomerID, Name: req.Name, Email: req.Email, Address: address(req.Address)}
	email := model.NormalizeEmail(req.Email)
	return aggregate.Create(ctx, h.Writer, req.CustomerID, req.Meta, c, commands.Unique{Stream: model.EmailStream(email),
		Claim: model.EmailClaimed{Email: email, CustomerID: req.CustomerID}, Taken: model.ErrEmailTaken}, h.Now)
}

// ChangeAddress changes a customer's shipping address.
func (h Handlers) ChangeAddress(ctx context.Context, req wire.ChangeAddress) (wire.CommandReply, error) {
	if err := auth.Act(ctx, req.CustomerID); err != nil {
		return wire.CommandReply{}, err
	}
	return aggregate.Answer(ctx, h.Writer, req.CustomerID, req.Meta, model.ChangeAddress{CustomerID: req.CustomerID, Address: address(req.Address)}, h.Now)
}

// Deactivate deactivates a customer.
func (h Handlers) Deactivate(ctx context.Context, req wire.IDCommand) (wire.CommandReply, error) {
	return aggregate.Answer(ctx, h.Writer, req.ID, req.Meta, model.Deactivate{CustomerID: req.ID}, h.Now)
}

// personalFields are the fields an erasure erases: those the customer events' types mark personal.
var personalFields = personal.SpecOf(model.Personal...).Fields()

// ReadModels are the read models that copy a customer's personal data (and redact it when they
// apply customer.erased).
var ReadModels = []string{"customers"}

// Erase erases a customer's personal data: it records customer.erased (what and where: the
// receipt), then destroys the customer's data key, so that every event of theirs reads redacted,
// for every reader and every rebuild. Safe to retry: for a customer already erased, the key is
// destroyed again (a no-op) and the receipt answered.
func (h Handlers) Erase(ctx context.Context, req wire.IDCommand) (wire.Erasure, error) {
	if h.Keys == nil {
		return wire.Erasure{}, errors.New("customer service: no key store to erase with")
	}
	c := model.Erase{CustomerID: req.ID, Fields: personalFields, Streams: []string{model.Stream(req.ID)}}
	if err := model.Validate(c); err != nil {
		return wire.Erasure{}, err
	}
	events, err := h.events(ctx, req.ID)
	if err != nil {
		return wire.Erasure{}, err
	}
	for _, r := range events {
		if e, err := model.Codec.Decode(r.Type, r.Data); err == nil {
			if reg, ok := e.(model.Registered); ok && reg.Email != personal.Redacted {
				c.Streams = append(c.Streams, model.EmailStream(reg.Email))
			}
		}
	}
	if _, err := aggregate.Answer(ctx, h.Writer, req.ID, req.Meta, c, h.Now); err != nil && !errors.Is(err, model.ErrErased) {
		return wire.Erasure{}, err
	}
	if _, err := h.Keys.Destroy(ctx, req.ID); err != nil {
		return wire.Erasure{}, err
	}
	return h.Erasure(ctx, wire.CustomerByID{ID: req.ID})
}

// Erasure answers the receipt of a customer's erasure: not found if they were not erased.
func (h Handlers) Erasure(ctx context.Context, req wire.CustomerByID) (wire.Erasure, error) {
	if err := domain.CheckID("id", req.ID); err != nil {
		return wire.Erasure{}, err
	}
	events, err := h.events(ctx, req.ID)
	if err != nil {
		return wire.Erasure{}, err
	}
	for _, r := range events {
		if r.Type != model.TypeErased {
			continue
		}
		e, err := model.Codec.Decode(r.Type, r.Data)
		if err != nil {
			return wire.Erasure{}, err
		}
		erased := e.(model.Erased)
		destroyed, err := h.Keys.Destroyed(ctx, req.ID) // zero if the erasure was cut short: erase again
		if err != nil {
			return wire.Erasure{}, err
		}
		return wire.Erasure{CustomerID: req.ID, ErasedAt: erased.At, ErasedBy: r.Metadata.Actor, Fields: erased.Fields, Streams: erased.Streams,
			KeyDestroyedAt: destroyed, ReadModels: ReadModels, Position: r.Position.String()}, nil
	}
	return wire.Erasure{}, fmt.Errorf("customer %s is not erased: %w", req.ID, domain.ErrNotFound)
}

// Standing answers whether customer id has an account and may order, for the order service as it
// places an order: from this instance's state of the customer, at the revision of its stream the
// answer's Basis names (the order's append holds only while the stream is there); Proven, once it
// has checked that no other instance changed it since (commands.Look).
func (h Handlers) Standing(ctx context.Context, req wire.StandingOf) (wire.CustomerStanding, error) {
	if err := domain.CheckID("id", req.ID); err != nil {
		return wire.CustomerStanding{}, err
	}
	var s model.State
	rev, err := aggregate.Look(ctx, h.Writer, req.ID, req.Proven, func(st model.State) { s = st })
	if err != nil {
		return wire.CustomerStanding{}, fmt.Errorf("standing of customer %s: %w", req.ID, err)
	}
	st := wire.CustomerStanding{CustomerID: req.ID, Registered: s.Registered, Active: s.Registered && !s.Deactivated && !s.Erased,
		Basis: []wire.StreamAt{{Stream: model.Stream(req.ID), Revision: rev, Types: standing}}}
	switch {
	case s.Erased:
		st.Closed = "erased"
	case s.Deactivated:
		st.Closed = "deactivated"
	}
	return st, nil
}

// standing are the events that change a customer's standing (not an address changed).
var standing = []string{model.TypeRegistered, model.TypeDeactivated, model.TypeErased}

// events are customer id's events (model.ErrNotFound: none).
func (h Handlers) events(ctx context.Context, id string) ([]eventstore.RecordedEvent, error) {
	events, err := h.Store.ReadStream(ctx, model.Stream(id), eventstore.ReadStreamOptions{})
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return nil, model.ErrNotFound
	}
	return events, err
}

// Register serves the handlers as the customer-commands NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, h Handlers) (micro.Service, error) {
	return commands.Service(wire.ServiceCustomerCommands, "registers and changes customers", ns).Serve(ctx, nc, log,
		rpc.On("register", wire.EndpointRegisterCustomer, h.Register),
		rpc.On("change_address", wire.EndpointChangeAddress, h.ChangeAddress),
		rpc.Staff(rpc.On("deactivate", wire.EndpointDeactivateCustomer, h.Deactivate)),
		rpc.Staff(rpc.On("erase", wire.EndpointEraseCustomer, h.Erase)),
		rpc.Staff(rpc.On("erasure", wire.EndpointCustomerErasure, h.Erasure)),
		rpc.Internal(rpc.On("standing", wire.EndpointCustomerStanding, h.Standing)),
	)
}
