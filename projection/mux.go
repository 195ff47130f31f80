package projection

import (
	"context"
	"fmt"
	"reflect"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Mux is a [Handler] that routes each event to the typed handler
// registered for the Go type of its decoded Data (see [On]); events of
// other types are ignored. Use it with a decoder ([WithDecoder]).
type Mux struct {
	routes map[reflect.Type]func(ctx context.Context, tx Tx, ev Event) error
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{routes: map[reflect.Type]func(context.Context, Tx, Event) error{}} }

// On registers fn for events whose decoded Data is a T, replacing any
// handler for T. fn gets the value typed, without a cast, and the record.
func On[T any](m *Mux, fn func(ctx context.Context, tx Tx, ev T, rec eventstore.Record) error) *Mux {
	m.routes[reflect.TypeFor[T]()] = func(ctx context.Context, tx Tx, ev Event) error {
		v, ok := ev.Data.(T)
		if !ok {
			return fmt.Errorf("projection: mux: %T is not a %s", ev.Data, reflect.TypeFor[T]())
		}
		return fn(ctx, tx, v, ev.Record)
	}
	return m
}

// Handle calls the handler registered for the type of ev.Data, if any.
func (m *Mux) Handle(ctx context.Context, tx Tx, ev Event) error {
	if ev.Data == nil {
		return nil
	}
	if h, ok := m.routes[reflect.TypeOf(ev.Data)]; ok {
		return h(ctx, tx, ev)
	}
	return nil
}
