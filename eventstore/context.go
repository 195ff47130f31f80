package eventstore

import "context"

// metadataKey is the context key under which the context helpers keep the
// metadata to stamp on events appended on behalf of the context.
type metadataKey struct{}

// WithCorrelationID returns a copy of ctx whose metadata carries the
// correlation ID id: the ID shared by every event caused, directly or not,
// by one request. Repositories stamp it on the events they append.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return withValues(ctx, Metadata{CorrelationIDKey: id})
}

// WithCausationID returns a copy of ctx whose metadata carries the causation
// ID id: the ID of the message or event that caused the events appended on
// behalf of ctx.
func WithCausationID(ctx context.Context, id string) context.Context {
	return withValues(ctx, Metadata{CausationIDKey: id})
}

// WithMetadata returns a copy of ctx whose metadata holds md's keys merged
// over the metadata ctx already carries (md wins on a key present in both).
// Use it for free keys such as a user or tenant; md is copied, so changing
// it afterwards does not change ctx.
func WithMetadata(ctx context.Context, md Metadata) context.Context {
	if len(md) == 0 {
		return ctx
	}
	return withValues(ctx, md)
}

// MetadataFrom returns a copy of the metadata carried by ctx, or nil when
// ctx carries none. The caller may change the copy freely.
func MetadataFrom(ctx context.Context) Metadata {
	md, _ := ctx.Value(metadataKey{}).(Metadata)
	return md.Clone()
}

// CausedBy returns a copy of ctx for handling rec: events appended on its
// behalf get rec's ID as causation ID and rec's correlation ID as
// correlation ID, or rec's ID when rec has none (rec then started the
// conversation). Projections and process managers call it before issuing
// commands in reaction to an event. Other keys carried by ctx are kept.
func CausedBy(ctx context.Context, rec Record) context.Context {
	id := rec.ID.String()
	corr := rec.Metadata.CorrelationID()
	if corr == "" {
		corr = id
	}
	return withValues(ctx, Metadata{CausationIDKey: id, CorrelationIDKey: corr})
}

// withValues stores the merge of ctx's metadata and add in a new context.
// The stored map is never changed after it is stored, so contexts sharing an
// ancestor never see each other's keys.
func withValues(ctx context.Context, add Metadata) context.Context {
	old, _ := ctx.Value(metadataKey{}).(Metadata)
	md := make(Metadata, len(old)+len(add))
	for k, v := range old {
		md[k] = v
	}
	for k, v := range add {
		md[k] = v
	}
	return context.WithValue(ctx, metadataKey{}, md)
}
