package testenv

import (
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSServer is an in-process NATS server with JetStream that a test owns:
// it can stop and restart it on the same port and store directory.
type NATSServer struct {
	t    testing.TB
	mu   sync.Mutex
	opts server.Options
	srv  *server.Server
}

// NATS starts an in-process NATS server with JetStream on a random port
// with its own store directory, and shuts it down when the test ends.
func NATS(t testing.TB) *NATSServer {
	t.Helper()
	n := &NATSServer{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	n.Start()
	// Keep the port chosen on first start, so a restart comes back at the
	// same URL.
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

// URL returns the server's client URL, the same across restarts.
func (n *NATSServer) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv.ClientURL()
}

// Start starts the server, or restarts it after Stop, on the same port and
// store directory. It does nothing when the server is running.
func (n *NATSServer) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil && n.srv.Running() {
		return
	}
	opts := n.opts
	var srv *server.Server
	var err error
	// A restarted server may find its port still in TIME_WAIT for a moment.
	for attempt := 0; attempt < 50; attempt++ {
		srv, err = server.NewServer(&opts)
		if err == nil {
			go srv.Start()
			if srv.ReadyForConnections(10 * time.Second) {
				break
			}
			srv.Shutdown()
			err = os.ErrDeadlineExceeded
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatalf("testenv: start NATS server: %v", err)
	}
	n.srv = srv
}

// Stop shuts the server down; Start brings it back. It is safe to call
// twice.
func (n *NATSServer) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
}
