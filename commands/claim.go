package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// ErrClaimed: the value is claimed by another owner.
var ErrClaimed = errors.New("claimed by another owner")

// Claim makes owner the only holder of a unique value (an e-mail address, a sku) without a shared
// table: the value has its own stream, and the claim is its first event, appended expecting no
// stream. Of two racing claims exactly one wins; the loser gets taken (the context's error for
// it; ErrClaimed when taken is nil). Claiming again for the same owner succeeds (a retried
// command). claim is the claim's event.
func (w *Writer) Claim(ctx context.Context, stream string, claim domain.Event, owner string, meta Meta, taken error) error {
	if taken == nil {
		taken = ErrClaimed
	}
	data, err := json.Marshal(claim)
	if err != nil {
		return err
	}
	_, err = w.store.Append(ctx, stream, eventstore.NoStream(), []eventstore.EventData{{
		ID: eventstore.DeriveID("claim:"+stream+":"+owner, 0), Type: claim.EventType(), Data: data,
		Metadata: EventMetadata(ctx, meta),
	}})
	if err == nil {
		return nil
	}
	if !errors.Is(err, eventstore.ErrWrongVersion) && !errors.Is(err, eventstore.ErrDuplicateEvent) {
		return fmt.Errorf("claim %s: %w", stream, err)
	}
	first, rerr := w.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Limit: 1})
	if rerr != nil || len(first) == 0 {
		return fmt.Errorf("claim %s: read the holder: %w", stream, errors.Join(err, rerr))
	}
	if first[0].ID == eventstore.DeriveID("claim:"+stream+":"+owner, 0) {
		return nil
	}
	return taken
}
