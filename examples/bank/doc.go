// Package bank is Chronicle's example domain service: bank accounts and
// transfers between them, kept as event streams in a Chronicle event store.
//
// It shows the pieces of Chronicle working together, through the public API
// only:
//
//   - two aggregates, [Account] (open, deposit, withdraw within an overdraft
//     limit, close) and [Transfer] (requested, then completed or failed),
//     whose invariants live in their command methods;
//   - a [Bank] service that runs commands through aggregate repositories
//     (Update retries on a concurrency conflict), with snapshots, and runs a
//     transfer as a small process that debits one account and credits the
//     other, stamping correlation and causation IDs on every event;
//   - an event whose shape changed: [MoneyDeposited] was stored at schema
//     version 1 with the amount as a decimal string ({"amount":"12.34"}),
//     and an upcaster (see [Upcasters]) brings those records to version 2
//     (cents and currency) on every read;
//   - three read models, account balances, account statements and daily
//     totals, as PostgreSQL tables ([PostgresReadModel]) or in memory
//     ([MemoryReadModel]), fed by a projection runner.
//
// The runnable demo in examples/bank/cmd/demo (make demo) drives all of it;
// examples/bank/cmd/bankctl is the bank's operations CLI.
package bank
