package bank_test

import (
	"context"
	"errors"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/snapshot"
)

func newBank(t *testing.T, opts ...bank.Option) (*bank.Bank, *memory.Store) {
	t.Helper()
	store := memory.New()
	b, err := bank.New(store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b, store
}

func open(t *testing.T, b *bank.Bank, id string, cents, overdraft int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.OpenAccount(ctx, id, "owner of "+id, "", overdraft); err != nil {
		t.Fatal(err)
	}
	if cents > 0 {
		if _, err := b.Deposit(ctx, id, cents); err != nil {
			t.Fatal(err)
		}
	}
}

func balance(t *testing.T, b *bank.Bank, id string) int64 {
	t.Helper()
	a, err := b.Account(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance
}

func records(t *testing.T, store *memory.Store, stream string) []eventstore.Record {
	t.Helper()
	recs, err := eventstore.Collect(store.ReadStream(context.Background(), stream, eventstore.ReadStreamOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestTransferCarriesCorrelationAndCausation(t *testing.T) {
	t.Parallel()
	b, store := newBank(t)
	open(t, b, "a", 100_00, 0)
	open(t, b, "b", 0, 0)
	ctx := eventstore.WithCorrelationID(context.Background(), "req-1")
	res, err := b.Transfer(ctx, "t1", "a", "b", 30_00)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := balance(t, b, "a"), int64(70_00); got != want {
		t.Errorf("balance of a = %d, want %d", got, want)
	}
	if got, want := balance(t, b, "b"), int64(30_00); got != want {
		t.Errorf("balance of b = %d, want %d", got, want)
	}
	tr := records(t, store, "transfer-t1")
	debit := records(t, store, "account-a")[2]
	credit := records(t, store, "account-b")[1]
	if len(tr) != 2 || tr[0].Type != bank.TypeTransferRequested || tr[1].Type != bank.TypeTransferCompleted {
		t.Fatalf("transfer stream = %+v", tr)
	}
	if res.Position != tr[1].Position {
		t.Errorf("Transfer returned position %s, want that of TransferCompleted %s", res.Position, tr[1].Position)
	}
	// Each step is caused by the one before, and all share the request's
	// correlation ID.
	chain := []struct {
		name      string
		rec       eventstore.Record
		causation string
	}{
		{"debit", debit, tr[0].ID.String()},
		{"credit", credit, debit.ID.String()},
		{"completion", tr[1], credit.ID.String()},
	}
	for _, c := range chain {
		if got := c.rec.Metadata.CorrelationID(); got != "req-1" {
			t.Errorf("%s: correlation %q, want req-1", c.name, got)
		}
		if got := c.rec.Metadata.CausationID(); got != c.causation {
			t.Errorf("%s: causation %q, want %q", c.name, got, c.causation)
		}
	}
}

func TestTransferRefusedByOverdraft(t *testing.T) {
	t.Parallel()
	b, store := newBank(t)
	open(t, b, "a", 10_00, 5_00)
	open(t, b, "b", 0, 0)
	res, err := b.Transfer(context.Background(), "t1", "a", "b", 15_01)
	if !errors.Is(err, bank.ErrOverdraftExceeded) {
		t.Fatalf("err = %v, want ErrOverdraftExceeded", err)
	}
	if res.Position.IsZero() {
		t.Error("a refused transfer returned no position to wait for")
	}
	tr, err := b.LoadTransfer(context.Background(), "t1")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != bank.TransferCancelled {
		t.Errorf("transfer status = %q, want %q", tr.Status, bank.TransferCancelled)
	}
	if got := len(records(t, store, "account-a")); got != 2 {
		t.Errorf("account a has %d events, want 2 (nothing debited)", got)
	}
	if balance(t, b, "a") != 10_00 || balance(t, b, "b") != 0 {
		t.Errorf("balances moved: a %d, b %d", balance(t, b, "a"), balance(t, b, "b"))
	}
}

func TestTransferToClosedAccountIsRefunded(t *testing.T) {
	t.Parallel()
	b, _ := newBank(t)
	ctx := context.Background()
	open(t, b, "a", 10_00, 0)
	open(t, b, "z", 0, 0)
	if _, err := b.CloseAccount(ctx, "z", "gone"); err != nil {
		t.Fatal(err)
	}
	_, err := b.Transfer(ctx, "t1", "a", "z", 4_00)
	if !errors.Is(err, bank.ErrAccountClosed) {
		t.Fatalf("err = %v, want ErrAccountClosed", err)
	}
	if got := balance(t, b, "a"); got != 10_00 {
		t.Errorf("balance of a = %d, want 1000 (refunded)", got)
	}
	tr, err := b.LoadTransfer(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != bank.TransferCancelled {
		t.Errorf("transfer status = %q, want failed", tr.Status)
	}
	if _, err := b.Transfer(ctx, "t1", "a", "z", 4_00); !errors.Is(err, bank.ErrTransferExists) {
		t.Errorf("reusing a transfer ID: err = %v, want ErrTransferExists", err)
	}
}

func TestOpenTwice(t *testing.T) {
	t.Parallel()
	b, _ := newBank(t)
	open(t, b, "a", 0, 0)
	if _, err := b.OpenAccount(context.Background(), "a", "x", "", 0); !errors.Is(err, bank.ErrAccountExists) {
		t.Fatalf("err = %v, want ErrAccountExists", err)
	}
}

func TestLegacyDepositsAreUpcastOnLoad(t *testing.T) {
	t.Parallel()
	snaps := snapshot.NewMemoryStore()
	b, store := newBank(t, bank.WithSnapshots(snaps, snapshot.Every(5)))
	ctx := context.Background()
	if _, err := store.Append(ctx, "account-old", eventstore.NoStream,
		eventstore.Event{Type: bank.TypeAccountOpened, Data: []byte(`{"owner":"grace","currency":"EUR"}`)},
		eventstore.Event{Type: bank.TypeMoneyDeposited, SchemaVersion: 1, Data: bank.LegacyDeposit("12.34")},
		eventstore.Event{Type: bank.TypeMoneyDeposited, SchemaVersion: 1, Data: bank.LegacyDeposit("0.5")},
		eventstore.Event{Type: bank.TypeMoneyDeposited, SchemaVersion: 1, Data: bank.LegacyDeposit("7")},
	); err != nil {
		t.Fatal(err)
	}
	if got, want := balance(t, b, "old"), int64(12_34+50+7_00); got != want {
		t.Fatalf("balance = %d, want %d", got, want)
	}
	// A new deposit is stored at version 2, and the snapshot it triggers
	// loads back to the same state.
	if _, err := b.Deposit(ctx, "old", 1); err != nil {
		t.Fatal(err)
	}
	recs := records(t, store, "account-old")
	if last := recs[len(recs)-1]; last.SchemaVersion != 2 {
		t.Errorf("new deposit stored at schema version %d, want 2", last.SchemaVersion)
	}
	if snaps.Len() != 1 {
		t.Errorf("snapshots = %d, want 1", snaps.Len())
	}
	if got, want := balance(t, b, "old"), int64(12_34+50+7_00+1); got != want {
		t.Errorf("balance after snapshot = %d, want %d", got, want)
	}
	if st := b.Stats(); st.SnapshotsTaken != 1 {
		t.Errorf("stats = %+v, want one snapshot taken", st)
	}
}

func TestParseAndFormatAmounts(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"12.34": 1234, "12.3": 1230, "12": 1200, "0.05": 5, "1000000.00": 100000000} {
		got, err := bank.ParseAmount(in)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.234", "1.", ".5", "abc", "1e3", "+1"} {
		if _, err := bank.ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) succeeded", bad)
		}
	}
	for c, want := range map[int64]string{0: "0.00", 5: "0.05", -5: "-0.05", 123456: "1,234.56", 100000000: "1,000,000.00"} {
		if got := bank.FormatCents(c); got != want {
			t.Errorf("FormatCents(%d) = %q, want %q", c, got, want)
		}
	}
}
