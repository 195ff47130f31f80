package bank_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/projection"
)

// A transfer debits one account and credits the other; the overdraft rule
// of the source account can refuse it.
func ExampleBank_Transfer() {
	ctx := context.Background()
	b, err := bank.New(memory.New())
	if err != nil {
		panic(err)
	}
	must := func(_ eventstore.AppendResult, err error) {
		if err != nil {
			panic(err)
		}
	}
	must(b.OpenAccount(ctx, "ada", "Ada", "EUR", 10_00))
	must(b.Deposit(ctx, "ada", 100_00))
	must(b.OpenAccount(ctx, "bob", "Bob", "EUR", 0))

	_, err = b.Transfer(ctx, "t1", "ada", "bob", 30_00)
	fmt.Println("t1:", err)
	_, err = b.Transfer(ctx, "t2", "ada", "bob", 80_01) // 70.00 + 10.00 overdraft is the most
	fmt.Println("t2 refused by the overdraft rule:", errors.Is(err, bank.ErrOverdraftExceeded))

	ada, _ := b.Account(ctx, "ada")
	bob, _ := b.Account(ctx, "bob")
	fmt.Println("ada:", bank.FormatCents(ada.Balance), "bob:", bank.FormatCents(bob.Balance))
	// Output:
	// t1: <nil>
	// t2 refused by the overdraft rule: true
	// ada: 70.00 bob: 30.00
}

// MoneyDeposited records stored at schema version 1 are read at version 2.
func ExampleUpcasters() {
	chain, err := bank.NewChain()
	if err != nil {
		panic(err)
	}
	stored := eventstore.Record{StreamID: "account-ada", StreamVersion: 2, Type: bank.TypeMoneyDeposited,
		SchemaVersion: 1, Data: bank.LegacyDeposit("12.34")}
	values, err := chain.Decode(stored)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s -> %+v\n", stored.Data, values[0])
	// Output:
	// {"amount":"12.34"} -> {Cents:1234 Currency:EUR TransferID:}
}

// The in-memory read model, fed by a projection runner that follows the
// in-memory event store; WaitFor gives read-your-writes.
func ExampleMemoryReadModel() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := memory.New()
	b, err := bank.New(events)
	if err != nil {
		panic(err)
	}
	pstore := projection.NewMemoryStore()
	rm, err := bank.NewMemoryReadModel(pstore)
	if err != nil {
		panic(err)
	}
	runner, err := projection.NewRunner(events, pstore, rm.Projections(),
		projection.WithDecoder(b.Chain()))
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()

	if _, err := b.OpenAccount(ctx, "ada", "Ada", "EUR", 0); err != nil {
		panic(err)
	}
	res, err := b.Deposit(ctx, "ada", 42_00)
	if err != nil {
		panic(err)
	}
	if err := runner.WaitFor(ctx, bank.BalancesProjection, res.Position); err != nil {
		panic(err)
	}
	balances, _ := rm.Balances(ctx)
	for _, bal := range balances {
		fmt.Println(bal.AccountID, bal.Owner, bank.FormatCents(bal.Cents), bal.Currency, bal.Status)
	}
	cancel()
	<-done
	// Output:
	// ada Ada 42.00 EUR open
}
