package telemetry_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

func benchAppend(b *testing.B, p telemetry.Providers, traced bool) {
	s := telemetry.NewStore(p, "postgresql", true)
	ctx := context.Background()
	if traced && p.Tracer != nil {
		ctx, _ = p.Tracer.Tracer("b").Start(ctx, "cmd")
	}
	evs := []eventstore.Event{{Type: "Deposited", Data: []byte(`{"amount":1}`)}}
	res := eventstore.AppendResult{Version: 3, Position: eventstore.Position{TxID: 100, Seq: 2}}
	b.ReportAllocs()
	for b.Loop() {
		c, _, op := s.StartAppend(ctx, "acct-1", eventstore.Any, evs)
		_ = c
		var err error
		op.End(&res, &err)
	}
}

func BenchmarkAppendNoProvider(b *testing.B) { benchAppend(b, telemetry.Providers{}, false) }

func BenchmarkAppendSDK(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewInMemoryExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	benchAppend(b, telemetry.Providers{Tracer: tp, Meter: mp}, true)
}
