// Package health serves liveness and readiness probes for a Chronicle
// service, built on the status its parts already report: the projections'
// [projection.Admin.Status] (or a Runner's), the relay's leadership
// ([relay.ReadLeadership]) and the event store's log status
// ([espg.Store.Status]).
//
// A [Checker] runs its checks on every readiness request and answers 200
// with a JSON report when there is no problem, 503 with the problems
// otherwise:
//
//	checker := health.New(
//		health.WithCheck(health.Projections(runner, health.ProjectionLimits{MaxLagTime: time.Minute})),
//		health.WithCheck(health.RelayLeader(pool, relay.WithSchema("bank"))),
//		health.WithCheck(health.Log(store, 30*time.Second)),
//	)
//	mux.Handle("GET /livez", checker.Liveness())
//	mux.Handle("GET /readyz", checker.Readiness())
//
// Liveness answers 200 as long as the process serves HTTP: a dependency
// that is down makes a service unready, never a candidate for a restart.
//
// The same rules back the exit code of `chronicle projections status` and
// `chronicle relay status` ([ProjectionProblems], [RelayProblems],
// [LogProblems]), so a script and a probe agree on what is wrong.
package health
