package demo

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/process"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// DefaultTransferTimeout is the demo's short timeout of a transfer's
// credit (Config.TransferTimeout).
const DefaultTransferTimeout = 500 * time.Millisecond

// processTransfers runs three transfers through the transfer process: one
// completes, one is compensated because its target is closed, one is
// compensated because its credit is not done within the timeout.
func (d *demo) processTransfers(ctx context.Context) error {
	d.step("Transfers as a process: debit, credit, compensation, timeout")
	transferTimeout := d.cfg.TransferTimeout
	es, ok := d.events.(*espg.Store)
	if !ok || d.cfg.Pool == nil {
		d.say("    skipped: the transfer process keeps its timers and commands in PostgreSQL")
		return nil
	}
	ps, err := projpg.New(d.cfg.Pool, projpg.WithSchema(d.cfg.Schema))
	if err != nil {
		return err
	}
	const slow = "slowbank"
	cmds, err := bank.TransferCommands(es, bank.WithCreditDelay(func(account string) time.Duration {
		if account == slow {
			return 4 * transferTimeout // a wide margin: the timer must fire first, also on a loaded machine
		}
		return 0
	}))
	if err != nil {
		return err
	}
	r, err := process.NewRunner(d.cfg.Pool, es, ps, []process.Definition{bank.TransferProcess(transferTimeout)},
		append(cmds, process.WithLogger(d.cfg.Logger), process.WithTimerPoll(50*time.Millisecond),
			process.WithCommandPoll(100*time.Millisecond), process.WithTracerProvider(d.cfg.TracerProvider),
			process.WithMeterProvider(d.cfg.MeterProvider))...)
	if err != nil {
		return err
	}
	if err := r.Migrate(ctx); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()

	res, err := d.bank.OpenAccount(ctx, slow, "Slow Bank", "EUR", 0)
	if err != nil {
		return err
	}
	d.saw(res)
	from := accountName(2)
	if res, err = d.bank.Deposit(ctx, from, 30_00); err != nil {
		return err
	}
	d.saw(res)
	d.res.Commands += 2
	d.res.Deposits += 30_00
	transfers := []struct {
		id, to, what string
		want         process.Status
	}{
		{"p-ok", accountName(3), "completes", process.Completed},
		{"p-closed", "zed", "target closed: refunded", process.Compensated},
		{"p-slow", slow, fmt.Sprintf("credit slower than %s: taken back, refunded", transferTimeout), process.Compensated},
	}
	t0 := time.Now()
	for _, tr := range transfers {
		if res, err = d.bank.RequestTransfer(ctx, tr.id, from, tr.to, 10_00); err != nil {
			return err
		}
		d.saw(res)
		d.res.Commands++
	}
	admin := r.Admin()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    TRANSFER\tFROM -> TO\tPROCESS\tTRANSFER\tEXPECTED\t")
	for _, tr := range transfers {
		var inst process.Instance
		for {
			inst, err = admin.Get(wctx, bank.TransferProcessName, tr.id)
			if err == nil && inst.Status.Terminal() {
				break
			}
			if err != nil && !errors.Is(err, process.ErrNotFound) {
				return err
			}
			select {
			case <-wctx.Done():
				return fmt.Errorf("demo: transfer process %s still %q after 30s", tr.id, inst.Status)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if inst.Status != tr.want {
			return fmt.Errorf("demo: transfer process %s ended %s (%s), want %s", tr.id, inst.Status, inst.Reason, tr.want)
		}
		// The process's last event is after every event its last
		// transaction appended (local commands run in it): wait for the
		// read models to pass it.
		hist, err := admin.History(ctx, bank.TransferProcessName, tr.id)
		if err != nil {
			return err
		}
		if len(hist) > 0 {
			d.saw(eventstore.AppendResult{Position: hist[len(hist)-1].Position})
		}
		t, err := d.bank.LoadTransfer(ctx, tr.id)
		if err != nil {
			return err
		}
		if t.Status == bank.TransferPending {
			return fmt.Errorf("demo: transfer %s is still pending after its process ended %s", tr.id, inst.Status)
		}
		fmt.Fprintf(tw, "    %s\t%s -> %s\t%s\t%s\t%s\t\n", tr.id, from, tr.to, inst.Status, t.Status, tr.what)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	st, err := admin.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Counts[process.Running]+s.Counts[process.Compensating]+s.Counts[process.CompensationFailed] > 0 || s.PendingTimers > 0 || s.PendingCommands > 0 {
			return fmt.Errorf("demo: processes left unfinished: %+v", s)
		}
		d.say("    %s processes: %d completed, %d compensated, nothing pending (no timer, no command) in %s",
			s.Type, s.CompletedN, s.CompensatedN, since(t0))
	}
	d.say("    see one: go run ./cmd/chronicle processes show transfer p-slow")
	head, err := es.Head(ctx)
	if err != nil {
		return err
	}
	d.saw(eventstore.AppendResult{Position: head})
	return nil
}
