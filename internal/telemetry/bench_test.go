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

func benchAppend(b *testing.B, p telemetry.Providers, traced bool, reset func()) {
	s := telemetry.NewStore(p, "postgresql", true)
	ctx := context.Background()
	if traced && p.Tracer != nil {
		ctx, _ = p.Tracer.Tracer("b").Start(ctx, "cmd")
	}
	evs := []eventstore.Event{{Type: "Deposited", Data: []byte(`{"amount":1}`)}}
	res := eventstore.AppendResult{Version: 3, Position: eventstore.Position{TxID: 100, Seq: 2}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// The in-memory exporter keeps every span: emptied now and then,
		// as the bench does between rounds, it measures the spans rather
		// than the growth of its slice.
		if i++; reset != nil && i%1000 == 0 {
			reset()
		}
		c, _, op := s.StartAppend(ctx, "acct-1", eventstore.Any, evs)
		_ = c
		var err error
		op.End(&res, &err)
	}
}

func BenchmarkAppendNoProvider(b *testing.B) { benchAppend(b, telemetry.Providers{}, false, nil) }

func BenchmarkAppendSDK(b *testing.B) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	benchAppend(b, telemetry.Providers{Tracer: tp, Meter: mp}, true, exp.Reset)
}

// The SDK's cost split: metrics only (spans not recorded), and spans only.
func BenchmarkAppendSDKMetricsOnly(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	benchAppend(b, telemetry.Providers{Meter: mp}, false, nil)
}

func BenchmarkAppendSDKTracingOnly(b *testing.B) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	benchAppend(b, telemetry.Providers{Tracer: tp}, true, exp.Reset)
}
