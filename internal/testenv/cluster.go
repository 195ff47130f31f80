package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// JetStreamCluster is a three-node in-process JetStream cluster on loopback that
// a test owns: it can kill a node and restart it on the same ports and
// store directory.
type JetStreamCluster struct {
	t     testing.TB
	mu    sync.Mutex
	name  string
	opts  []server.Options
	nodes []*server.Server
}

// NATSLogEnv names the environment variable that, when set, makes the
// nodes of a NATSCluster log to stderr (notices, warnings and errors: a
// replica failing to apply an entry, a stream leader election).
const NATSLogEnv = "CHRONICLE_TEST_NATS_LOG"

// NATSClusterSize is the number of nodes NATSCluster starts.
const NATSClusterSize = 3

// NATSCluster starts three in-process NATS servers with JetStream,
// clustered on loopback (random ports, their own store directories, a
// cluster name unique to the test), waits until the cluster has a
// JetStream meta leader, and shuts them down when the test ends.
func NATSCluster(t testing.TB) *JetStreamCluster {
	t.Helper()
	ports := freePorts(t, 2*NATSClusterSize)
	name := "chronicle-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	var routes []*url.URL
	for i := 0; i < NATSClusterSize; i++ {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[NATSClusterSize+i])})
	}
	c := &JetStreamCluster{t: t, name: name}
	for i := 0; i < NATSClusterSize; i++ {
		c.opts = append(c.opts, server.Options{
			ServerName: fmt.Sprintf("%s-n%d", name, i),
			Host:       "127.0.0.1",
			Port:       ports[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      os.Getenv(NATSLogEnv) == "",
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: name,
				Host: "127.0.0.1",
				Port: ports[NATSClusterSize+i],
			},
			Routes: routes,
		})
	}
	c.nodes = make([]*server.Server, NATSClusterSize)
	t.Cleanup(c.shutdownAll)
	for i := range c.nodes {
		c.Start(i)
	}
	c.WaitReady(30 * time.Second)
	return c
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// URLs returns the client URLs of the three nodes, the same across
// restarts; connect with all of them so the client fails over.
func (c *JetStreamCluster) URLs() []string {
	urls := make([]string, len(c.opts))
	for i, o := range c.opts {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Port)
	}
	return urls
}

// URL returns the client URLs joined by commas, as nats.Connect takes them.
func (c *JetStreamCluster) URL() string { return strings.Join(c.URLs(), ",") }

// Node returns the index of the node whose server name is name, or -1.
func (c *JetStreamCluster) Node(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// Server returns node i's running server, or nil when it is down.
func (c *JetStreamCluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.nodes[i]; s != nil && s.Running() {
		return s
	}
	return nil
}

// Start starts node i, or restarts it after Kill, on the same ports and
// store directory. It does nothing when the node is running.
func (c *JetStreamCluster) Start(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.nodes[i]; s != nil && s.Running() {
		return
	}
	var srv *server.Server
	var err error
	// A restarted node may find its ports still in TIME_WAIT for a moment.
	for attempt := 0; attempt < 50; attempt++ {
		opts := c.opts[i]
		srv, err = server.NewServer(&opts)
		if err == nil {
			if !opts.NoLog {
				srv.ConfigureLogger()
			}
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
		c.t.Fatalf("testenv: start NATS cluster node %d: %v", i, err)
	}
	c.nodes[i] = srv
}

// Kill shuts node i down and waits until it is gone; Start brings it back.
func (c *JetStreamCluster) Kill(i int) {
	c.mu.Lock()
	srv := c.nodes[i]
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// WaitReady waits, at most d, until every running node sees the cluster's
// JetStream meta leader and is current with it.
func (c *JetStreamCluster) WaitReady(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		leader, current := false, true
		for i := range c.nodes {
			s := c.Server(i)
			if s == nil {
				continue
			}
			if s.JetStreamIsLeader() {
				leader = true
			}
			if !s.JetStreamIsCurrent() {
				current = false
			}
		}
		if leader && current {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testenv: NATS cluster %s has no JetStream meta leader after %s", c.name, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *JetStreamCluster) shutdownAll() {
	for i := range c.nodes {
		c.Kill(i)
	}
}
