package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// agentDownFor is how long the killed agent stays down before it is restarted.
const agentDownFor = 4 * time.Second

// serverFromClients isolates agent-restart/server for ingress and lets role=client pods in on TCP 80.
const serverFromClients = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-clients, namespace: agent-restart}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{protocol: TCP, port: 80}]
`

// describeAgentRestartSpecs: the agent of the server's node is killed with SIGKILL while a policy is
// enforced. The kernel keeps the table, so the denied pair stays denied and the allowed pair keeps
// connecting while no agent runs; a label change made meanwhile is missed. The restarted agent
// replaces the table without a window in which the denied pair connects, and catches up with the
// missed change.
//
//	agent-restart/server           node 1  app=server   the killed agent's node
//	agent-restart/client           node 2  role=client  allowed
//	agent-restart/intruder-local   node 1  (no labels)  denied, probed without pause throughout
//	agent-restart/intruder-remote  node 2  (no labels)  denied, relabelled role=client while the agent is down
func describeAgentRestartSpecs(env *labEnv) {
	It("keeps enforcing while the agent is down and converges without an open window on restart", Label("agent-restart"), func(ctx SpecContext) {
		l := env.lab
		nodes := l.NodeNames()
		const (
			server         = "agent-restart/server"
			client         = "agent-restart/client"
			intruderLocal  = "agent-restart/intruder-local"
			intruderRemote = "agent-restart/intruder-remote"
		)
		setUpCluster(ctx, l, "agent-restart",
			webPod("server", map[string]string{"app": "server"}),
			webPod("client", map[string]string{"role": "client"}),
			webPod("intruder-local", nil),
			webPod("intruder-remote", nil),
		)
		serverNode := nodes[0]
		expectNode(l, server, serverNode)
		expectNode(l, intruderLocal, serverNode)
		expectNode(l, intruderRemote, nodes[1])
		applyPolicies(ctx, l, serverFromClients)
		verdicts{
			pair(client, server):         true,
			pair(intruderLocal, server):  false,
			pair(intruderRemote, server): false,
		}.expectConverged(ctx, l)

		By("probing the denied pair without pause from now until the restarted agent has converged")
		watch := watchDeniedPair(ctx, l, intruderLocal, server)

		By("killing the agent of " + serverNode)
		Expect(l.KillAgent(serverNode)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			if !l.AgentRunning(serverNode) {
				Expect(l.RestartAgent(ctx, serverNode)).To(Succeed())
			}
		}, NodeTimeout(2*time.Minute))
		for _, family := range l.Families() {
			Consistently(ctx, func(ctx context.Context) [2]bool {
				return [2]bool{connects(ctx, l, client, server, family), connects(ctx, l, intruderRemote, server, family)}
			}).WithTimeout(agentDownFor/time.Duration(len(l.Families()))).WithPolling(200*time.Millisecond).
				Should(Equal([2]bool{true, false}), "%s with no agent on %s: want client -> server allowed, intruder-remote -> server blocked", family, serverNode)
		}

		By("relabelling intruder-remote as a client while no agent watches")
		Expect(l.Relabel(ctx, scenario.Relabel{Kind: scenario.KindPod, Name: intruderRemote, Labels: map[string]string{"role": "client"}})).To(Succeed())

		By("restarting the agent of " + serverNode)
		restartedAt := time.Now()
		Expect(l.RestartAgent(ctx, serverNode)).To(Succeed())
		Eventually(ctx, func(ctx context.Context) error {
			return programmedSince(ctx, l, serverNode, restartedAt)
		}).WithTimeout(convergeTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		verdicts{
			pair(client, server):         true,
			pair(intruderLocal, server):  false,
			pair(intruderRemote, server): true, // the change made while the agent was down
		}.expectConverged(ctx, l)

		attempts, connected, first := watch.stop()
		GinkgoWriter.Printf("denied pair %s -> %s probed %d times across the kill and the restart\n", intruderLocal, server, attempts)
		Expect(connected).To(BeZero(), "the denied pair connected while the agent was down or restarting; the first times:\n%s", strings.Join(first, "\n"))
		Expect(attempts).To(BeNumerically(">=", 5*watchProbers), "too few probes of the denied pair to show anything")
	}, SpecTimeout(lifecycleSpecTimeout))
}

// programmedSince checks that the node's NodeEnforcement says Programmed for a sync finished after
// since. The API keeps whole seconds, and the previous agent's last sync was more than a second
// before since.
func programmedSince(ctx context.Context, l *lab.Lab, node string, since time.Time) error {
	ne, err := nodeEnforcement(ctx, l, node)
	if err != nil {
		return err
	}
	if !meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed) {
		return fmt.Errorf("%s is not Programmed: %v", node, ne.Status.Conditions)
	}
	if ne.Status.LastSyncTime == nil || ne.Status.LastSyncTime.Time.Before(since.Truncate(time.Second)) {
		return fmt.Errorf("%s: last sync %v is older than the restart at %s", node, ne.Status.LastSyncTime, since.Format(time.RFC3339Nano))
	}
	return nil
}

// watchProbers is how many probes of the watched pair are in flight at once.
const watchProbers = 8

// deniedPairWatch probes one denied pair in loops, alternating the lab's families, and records
// every probe that connected.
type deniedPairWatch struct {
	cancel    context.CancelFunc
	done      sync.WaitGroup
	attempts  atomic.Int64
	connected atomic.Int64
	mu        sync.Mutex
	first     []string // the first watchKeptConnections connections, when and over which family
}

// watchKeptConnections bounds the connections a watch describes: an open window makes thousands.
const watchKeptConnections = 20

func watchDeniedPair(ctx context.Context, l *lab.Lab, src, dst string) *deniedPairWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &deniedPairWatch{cancel: cancel}
	families := l.Families()
	// A blocked probe waits lab.ProbeTimeout for a SYN-ACK and TCP resends no SYN within it, so one
	// prober would send a SYN about once a second; staggered probers send one every
	// ProbeTimeout/watchProbers and catch a short window.
	for p := range watchProbers {
		w.done.Go(func() {
			select {
			case <-time.After(time.Duration(p) * lab.ProbeTimeout / watchProbers):
			case <-ctx.Done():
				return
			}
			for i := p; ctx.Err() == nil; i++ {
				family := families[i%len(families)]
				ok, err := l.Probe(ctx, src, dst, probePort, scenario.ProtocolTCP, family)
				if ctx.Err() != nil {
					return
				}
				w.attempts.Add(1)
				if ok || err != nil {
					w.connected.Add(1)
					w.mu.Lock()
					if len(w.first) < watchKeptConnections {
						w.first = append(w.first, time.Now().Format(time.RFC3339Nano)+" "+string(family)+" "+describeProbe(ok, err))
					}
					w.mu.Unlock()
				}
			}
		})
	}
	DeferCleanup(func() { w.stop() })
	return w
}

// stop ends the probing and returns how many probes ran, how many connected (or failed to run), and
// the first of those.
func (w *deniedPairWatch) stop() (attempts, connected int64, first []string) {
	w.cancel()
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.attempts.Load(), w.connected.Load(), w.first
}

func describeProbe(ok bool, err error) string {
	if err != nil {
		return "probe failed: " + err.Error()
	}
	if ok {
		return "connected"
	}
	return "blocked"
}
