// Command chronicle is Chronicle's generic operations tool: it migrates the
// tables, lists and shows streams, tails the global log, runs the relay and
// lists dead letters of any Chronicle database.
//
// Commands that run a service's own code (projection status and rebuilds,
// retrying dead letters, upcasting events) need a binary built by the
// service with package cli and its projections registered; see docs/cli.md.
//
// Usage:
//
//	chronicle [command] [flags]
//	chronicle --help
package main

import "github.com/chronicle-go/chronicle/cli"

func main() {
	cli.New().Main()
}
