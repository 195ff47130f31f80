// Command chronicle is Chronicle's generic operations tool: it migrates the
// tables, lists and shows streams, tails the global log, runs the relay,
// and shows every projection of any Chronicle database (builds, state from
// the runners' heartbeats, checkpoint, dead letters) and lists their dead
// letters.
//
// Commands that run a service's own code (projection lag and rebuilds,
// retrying and discarding dead letters, upcasting events) need a binary
// built by the service with package cli and its projections registered;
// see docs/cli.md.
//
// Usage:
//
//	chronicle [command] [flags]
//	chronicle --help
//	chronicle --version
//	source <(chronicle completion bash)   # or zsh, fish, powershell
package main

import "github.com/chronicle-go/chronicle/cli"

func main() {
	cli.New().Main()
}
