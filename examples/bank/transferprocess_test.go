package bank_test

import (
	"context"
	"testing"
	"time"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/process"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// The transfer process completes a transfer, compensates one to a closed
// account and one whose credit is not done in time; none stays pending and
// the money adds up.
func TestTransferProcess(t *testing.T) {
	pool, schema := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	es, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := bank.New(es)
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := bank.TransferCommands(es, bank.WithCreditDelay(func(account string) time.Duration {
		if account == "slow" {
			return time.Second
		}
		return 0
	}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := process.NewRunner(pool, es, ps, []process.Definition{bank.TransferProcess(200 * time.Millisecond)},
		append(cmds, process.WithTimerPoll(20*time.Millisecond), process.WithCommandPoll(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()

	for _, id := range []string{"ann", "bob", "zed", "slow"} {
		if _, err := b.OpenAccount(ctx, id, id, "EUR", 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Deposit(ctx, "ann", 100_00); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CloseAccount(ctx, "zed", "moved away"); err != nil {
		t.Fatal(err)
	}
	want := map[string]process.Status{"t-ok": process.Completed, "t-closed": process.Compensated, "t-slow": process.Compensated}
	for id, to := range map[string]string{"t-ok": "bob", "t-closed": "zed", "t-slow": "slow"} {
		if _, err := b.RequestTransfer(ctx, id, "ann", to, 10_00); err != nil {
			t.Fatal(err)
		}
	}
	admin := r.Admin()
	for id, st := range want {
		for {
			i, err := admin.Get(ctx, bank.TransferProcessName, id)
			if err == nil && i.Status == st {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("transfer %s: %v, %v; want %s", id, i.Status, err, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
		tr, err := b.LoadTransfer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantTr := bank.TransferDone
		if st == process.Compensated {
			wantTr = bank.TransferCancelled
		}
		if tr.Status != wantTr {
			t.Errorf("transfer %s is %s, want %s", id, tr.Status, wantTr)
		}
	}
	for acct, cents := range map[string]int64{"ann": 90_00, "bob": 10_00, "zed": 0, "slow": 0} {
		a, err := b.Account(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != cents {
			t.Errorf("%s has %d, want %d", acct, a.Balance, cents)
		}
	}
}
