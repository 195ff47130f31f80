// Package docstest holds the test that compiles every Go code block of the
// README and of docs/, so that the documentation cannot drift from the
// code. The conventions a document follows for its blocks to compile are
// in docs/README.md ("Code blocks compile").
package docstest
