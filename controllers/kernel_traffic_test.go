package controllers_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/explain/dataplane"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	nftkernel "github.com/nftpolicy/nftpolicy/nft/kernel"
)

// sampleRedisPolicy is the guestbook redis policy exactly as config/samples ships it, moved to the
// kernel specs' namespace: only app=guestbook pods of the namespace reach app=redis pods.
func sampleRedisPolicy() *networkingv1.NetworkPolicy {
	data, err := os.ReadFile(filepath.Join("..", "config", "samples", "networking_v1_networkpolicy_redis.yaml"))
	Expect(err).NotTo(HaveOccurred())
	policy := &networkingv1.NetworkPolicy{}
	Expect(yaml.Unmarshal(data, policy)).To(Succeed())
	Expect(policy.Name).To(Equal("redis-policy"))
	policy.Namespace = kernelNamespace
	return policy
}

func enforcementOf(nodeName string) *policyv1alpha1.NodeEnforcement {
	ne := &policyv1alpha1.NodeEnforcement{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: nodeName}, ne); err != nil {
		return nil
	}
	return ne
}

// skipWithoutKernel skips unless this process can build network namespaces and program nf_tables in
// them, and the tools that list a table are installed.
func skipWithoutKernel() {
	if reason := netlab.Unavailable(); reason != "" {
		Skip("skipping the kernel specs: netlab " + reason)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			Skip("skipping the kernel specs: they list tables with " + tool + ", which is not installed")
		}
	}
}

// The agents of two nodes, each with the real netlink applier in its node's network namespace, enforce
// the guestbook redis policy on real TCP and UDP traffic between pod namespaces. See kernel_lab_test.go
// for the cluster and its address plan.
var _ = Describe("The agents of two nodes on the kernel", Ordered, Label("kernel"), func() {
	var (
		node1, node2                          *netlab.Node
		redisLeader, redisFollower, guestbook *kernelPod
		busybox1, busybox2                    *kernelPod
		agent1, agent2                        *kernelAgent
		clients, servers                      []*kernelPod
	)

	// unisolated is the reachability without a policy: every pod reaches redis.
	unisolated := map[string]string{
		"guestbook -> redis-leader":   allowed,
		"guestbook -> redis-follower": allowed,
		"busybox-1 -> redis-leader":   allowed,
		"busybox-1 -> redis-follower": allowed,
		"busybox-2 -> redis-leader":   allowed,
		"busybox-2 -> redis-follower": allowed,
	}
	// isolated is the reachability the redis policy gives, whichever node each pod runs on.
	isolated := map[string]string{
		"guestbook -> redis-leader":   allowed, // same node
		"guestbook -> redis-follower": allowed, // across the fabric
		"busybox-1 -> redis-leader":   denied,  // same node
		"busybox-1 -> redis-follower": denied,  // across the fabric
		"busybox-2 -> redis-leader":   denied,  // across the fabric
		"busybox-2 -> redis-follower": denied,  // same node
	}

	// deniedPairs are the client -> server pairs that isolated denies.
	deniedPairs := func() [][2]*kernelPod {
		return [][2]*kernelPod{
			{busybox1, redisLeader}, {busybox1, redisFollower},
			{busybox2, redisLeader}, {busybox2, redisFollower},
		}
	}

	BeforeAll(func() {
		skipWithoutKernel()
		lab, err := netlab.New()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(lab.Close()).To(Succeed()) })
		node1, err = lab.AddNode()
		Expect(err).NotTo(HaveOccurred())
		node2, err = lab.AddNode()
		Expect(err).NotTo(HaveOccurred())
		Expect(lab.Connect(node1, node2)).To(Succeed())
		probeBackend, err := nftkernel.NewNetlinkBackend(node1.Path)
		Expect(err).NotTo(HaveOccurred())
		if err := nft.RemoveTable(probeBackend, table); err != nil {
			Skip("skipping the kernel specs: nf_tables is not available: " + err.Error())
		}
		Expect(probeBackend.Close()).To(Succeed())

		for _, name := range []string{kernelNode1, kernelNode2} {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
			Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, node))).To(Succeed())
		}
		createNamespace(kernelNamespace)
		redisLeader = addKernelPod(node1, kernelNode1, "redis-leader", "app", "redis")
		guestbook = addKernelPod(node1, kernelNode1, "guestbook", "app", "guestbook")
		busybox1 = addKernelPod(node1, kernelNode1, "busybox-1", "run", "busybox")
		redisFollower = addKernelPod(node2, kernelNode2, "redis-follower", "app", "redis")
		busybox2 = addKernelPod(node2, kernelNode2, "busybox-2", "run", "busybox")
		clients = []*kernelPod{guestbook, busybox1, busybox2}
		servers = []*kernelPod{redisLeader, redisFollower}
		DeferCleanup(func() {
			for _, p := range append(clients, servers...) {
				deleteKernelPod(p)
			}
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, sampleRedisPolicy()))).To(Succeed())
		})
		for _, p := range servers {
			srv, err := p.net.Serve(redisPort)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(srv.Close)
		}

		// The restart spec replaces agent1: stop whichever agents are current, before the lab goes.
		DeferCleanup(func() {
			for _, a := range []*kernelAgent{agent1, agent2} {
				if a != nil {
					a.stop()
				}
			}
		})
		agent1 = newKernelAgent(kernelNode1, node1)
		agent1.start()
		agent2 = newKernelAgent(kernelNode2, node2)
		agent2.start()

		By("checking that, with no policy, the agents' tables let every pod reach redis")
		Eventually(func(g Gomega) {
			for _, a := range []*kernelAgent{agent1, agent2} {
				g.Expect(a.reconciler.ReadyCheck(nil)).To(Succeed(), "the first sync of %s committed", a.nodeName)
			}
		}).Should(Succeed())
		Eventually(reachability).WithArguments(clients, servers).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).
			Should(Equal(unisolated))
	})

	It("isolates redis: the guestbook reaches it, busybox on either node does not", func() {
		Expect(k8sClient.Create(ctx, sampleRedisPolicy())).To(Succeed())
		Eventually(reachability).WithArguments(clients, servers).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).
			Should(Equal(isolated))

	})

	It("reports Programmed with the table's chains on each node's NodeEnforcement", func() {
		for _, a := range []*kernelAgent{agent1, agent2} {
			Eventually(func(g Gomega) {
				ne := enforcementOf(a.nodeName)
				g.Expect(ne).NotTo(BeNil())
				g.Expect(meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)).To(BeTrue(), "%+v", ne.Status.Conditions)
				g.Expect(meta.IsStatusConditionFalse(ne.Status.Conditions, policyv1alpha1.ConditionDegraded)).To(BeTrue(), "%+v", ne.Status.Conditions)
				g.Expect(ne.Status.Chains).To(BeNumerically(">", 0))
				g.Expect(ne.Status.Chains).To(BeEquivalentTo(len(a.reconciler.Applier.Committed().Chains)))
				g.Expect(ne.Status.IsolatedPods).To(BeEquivalentTo(1), "one redis per node")
				g.Expect(ne.Status.PoliciesInEffect).To(BeEquivalentTo(1))
			}).Should(Succeed())
		}
		Expect(enforcementOf(kernelNode1).Status.LocalPods).To(BeEquivalentTo(3))
		Expect(enforcementOf(kernelNode2).Status.LocalPods).To(BeEquivalentTo(2))
	})

	It("keeps denied traffic denied while node 1's agent is down and restarts it with one full replacement", func() {
		before, err := kernelListing(node1)
		Expect(err).NotTo(HaveOccurred(), before)
		committedBefore := nft.Render(agent1.reconciler.Applier.Committed())

		By("probing every denied pair continuously from before the stop until after the restart")
		watch := watchForLeaks(deniedPairs()...)
		watchStopped := false
		DeferCleanup(func() {
			if !watchStopped {
				watch.stop()
			}
		})

		By("stopping node 1's agent: its table stays in the kernel and keeps enforcing")
		stopped := time.Now()
		agent1.stop()
		Expect(kernelListing(node1)).To(Equal(before), "the table outlives the agent")
		Consistently(reachability).WithArguments(clients, servers).WithTimeout(3 * time.Second).WithPolling(250 * time.Millisecond).
			Should(Equal(isolated))

		By("starting a new agent for node 1, whose applier knows nothing of the kernel")
		agent1 = newKernelAgent(kernelNode1, node1)
		Expect(agent1.reconciler.Applier.Committed()).To(BeNil())
		restarted := time.Now()
		agent1.start()
		Eventually(func() error { return agent1.reconciler.ReadyCheck(nil) }).Should(Succeed())
		GinkgoWriter.Printf("node 1's agent was down %s and committed its first sync %s after starting\n",
			restarted.Sub(stopped).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		txs := agent1.kernel.transactions()
		Expect(txs).To(HaveLen(1))
		Expect(fullReplace(txs[0])).To(BeTrue(), "the first transaction of a new agent replaces the table:\n%s", txs[0])

		By("checking that it converged on the same table, and that resyncs then cost no transaction")
		converged := nft.Render(agent1.reconciler.Applier.Committed())
		Expect(converged).To(Equal(committedBefore), "the new agent compiled the table the old one had committed")
		after, err := kernelListing(node1)
		Expect(err).NotTo(HaveOccurred(), after)
		Expect(tableContent(after)).To(Equal(tableContent(converged)), "the kernel holds what the new agent committed")
		Expect(tableContent(after)).To(Equal(tableContent(before)), "the kernel holds what it held before the restart")
		Consistently(func() int { return len(agent1.kernel.transactions()) }).
			WithTimeout(3 * kernelResyncPeriod).WithPolling(100 * time.Millisecond).Should(Equal(1))
		Expect(reachability(clients, servers)).To(Equal(isolated))

		leaks := watch.stop()
		watchStopped = true
		GinkgoWriter.Printf("leak watch: %d attempts on denied pairs over %s\n", watch.attempts.Load(), time.Since(stopped).Round(time.Millisecond))
		Expect(leaks).To(BeEmpty(), "denied connections got through during the restart")
		Expect(watch.attempts.Load()).To(BeNumerically(">=", 16*5), "the 16 denied probes (4 pairs, TCP and UDP, IPv4 and IPv6) ran 5 times each on average")
	})

	It("repairs every kind of foreign change to node 1's table within 1s, while denied pairs are probed", func() {
		// The policy is in place when the specs run in order; hack/bench/drift.sh runs this one alone.
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, sampleRedisPolicy()))).To(Succeed())
		Eventually(reachability).WithArguments(clients, servers).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).
			Should(Equal(isolated))
		before, err := kernelListing(node1)
		Expect(err).NotTo(HaveOccurred(), before)
		beforeContent := tableContent(before)
		// Statuses are written apart from syncs: count from a settled status, and expect one more repair
		// per change, so that a write still on its way cannot be taken for the next change's.
		var repairsStart int32
		Consistently(func() int32 { repairsStart, _ = lastDriftRepair(kernelNode1); return repairsStart }).
			WithTimeout(500 * time.Millisecond).Should(Equal(repairsStart))
		notified := 0
		base := repairsStart
		for _, change := range foreignChanges {
			By("making a foreign change: " + change.name)
			txsBefore := len(agent1.kernel.transactions())
			args := change.args(node1, agent1.reconciler.Applier.Committed())
			watch := watchForLeaks(deniedPairs()...)
			changed := time.Now() // an upper bound: nft commits after it starts
			runNft(node1, args...)
			repaired := awaitRepair(agent1, node1, beforeContent, txsBefore, time.Second)
			leaks := watch.stop()
			Expect(reachability(clients, servers)).To(Equal(isolated), "after repairing %s", change.name)

			var repairs int32
			var last *policyv1alpha1.DriftRepair
			Eventually(func() int32 { repairs, last = lastDriftRepair(kernelNode1); return repairs }).Should(BeNumerically(">", base),
				"the NodeEnforcement counts the repair of %s", change.name)
			// The specs resync every second, so a resync's read-back sometimes finds the change before the
			// notification's sync runs; the notification is then moot and ignored, unless the agent
			// received it only after the read-back's replacement began (a loaded machine): one redundant
			// replacement more. Count from a settled status before the next change.
			Eventually(func() bool {
				before, _ := lastDriftRepair(kernelNode1)
				time.Sleep(500 * time.Millisecond)
				repairs, last = lastDriftRepair(kernelNode1)
				return repairs == before
			}).WithTimeout(5*time.Second).Should(BeTrue(), "the repairs of %s settle", change.name)
			Expect(repairs-base).To(BeNumerically("<=", 2), "at most one redundant repair of %s", change.name)
			base = repairs
			switch last.Cause {
			case policyv1alpha1.DriftCauseNotification:
				notified++
				Expect(last.Message).To(ContainSubstring("by nft"), "the notification names who changed the table")
			case policyv1alpha1.DriftCauseReadBack:
				Expect(last.Message).To(ContainSubstring("differs from the last commit"))
			default:
				Fail("unknown drift cause " + last.Cause)
			}
			ne := enforcementOf(kernelNode1)
			programmed := meta.FindStatusCondition(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)
			Expect(programmed.Status).To(Equal(metav1.ConditionTrue))
			GinkgoWriter.Printf("%s: repaired within %s of starting the nft command (agent: %s from news to commit); %d probes of denied pairs, %d got through\n",
				change.name, repaired.Sub(changed).Round(time.Microsecond), last.RepairedAfter.Duration, watch.attempts.Load(), len(leaks))
			recordDriftFigure(driftFigure{Change: change.name, Cause: last.Cause, RepairMs: ms(repaired.Sub(changed)),
				ReportedMs: ms(last.RepairedAfter.Duration), Probes: watch.attempts.Load(), Leaks: len(leaks)})
		}
		Expect(notified).To(BeNumerically(">=", 1), "at least one change was repaired from its notification")
		Expect(counterValue("nftpolicy_drift_repairs_total", "cause", policyv1alpha1.DriftCauseNotification)).To(BeNumerically(">=", notified))
	})

	It("finds a foreign change by reading the table back when no notification tells of it", func() {
		before, err := kernelListing(node1)
		Expect(err).NotTo(HaveOccurred(), before)
		By("replacing node 1's agent with one that does not watch notifications")
		agent1.stop()
		agent1 = newKernelAgentWith(kernelNode1, node1, false)
		agent1.start()
		Eventually(func() error { return agent1.reconciler.ReadyCheck(nil) }).Should(Succeed())
		Eventually(func() int { return len(agent1.kernel.transactions()) }).Should(Equal(1))
		By("flushing the table: the next resync reads it back and replaces it")
		changed := time.Now()
		runNft(node1, "flush", "table", "inet", table)
		repaired := awaitRepair(agent1, node1, tableContent(before), 1, 3*kernelResyncPeriod)
		GinkgoWriter.Printf("read-back repaired the flushed table %s after the flush (resync period %s)\n", repaired.Sub(changed).Round(time.Millisecond), kernelResyncPeriod)
		Eventually(func() string {
			// The count is the running agent's: this one repaired once.
			repairs, last := lastDriftRepair(kernelNode1)
			if repairs != 1 || last == nil || last.Time.Time.Before(changed.Truncate(time.Second)) {
				return ""
			}
			return last.Cause + ": " + last.Message
		}).Should(And(HavePrefix(policyv1alpha1.DriftCauseReadBack+": "), ContainSubstring("rules, not")))
		Expect(reachability(clients, servers)).To(Equal(isolated))

		By("checking that read-backs of an unchanged table cost no transaction")
		Consistently(func() int { return len(agent1.kernel.transactions()) }).
			WithTimeout(3 * kernelResyncPeriod).WithPolling(100 * time.Millisecond).Should(Equal(2))
	})

	It("explains guestbook -> redis from the kernel, and reports a foreign change as drift until a resync repairs it", func() {
		// agent1 is the agent of the spec before: it finds foreign changes on resyncs only.
		backend, err := nftkernel.NewNetlinkBackend(node1.Path)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = backend.Close() }()
		h := &dataplane.Handler{Node: kernelNode1, Table: table, Committed: agent1.reconciler.Applier.Committed, Kernel: backend}
		q := dataplane.Query{Direction: explain.Ingress, Src: guestbook.net.IPv4, Dst: redisLeader.net.IPv4, Proto: nft.ProtoTCP, Port: redisPort}
		answer := func() *explain.DataplaneAnswer {
			a, err := h.Answer(q)
			Expect(err).NotTo(HaveOccurred())
			return a
		}
		a := answer()
		Expect(a.Verdict).To(Equal(explain.Accept))
		Expect(a.Drift).To(BeEmpty())

		By("deleting the guestbook pod from the peer set of the redis policy, behind the agent's back")
		set := ""
		for _, st := range a.Path {
			for _, l := range st.Lookups {
				if st.Matched && strings.HasPrefix(l.Set, "peers_") && l.Found {
					set = l.Set
				}
			}
		}
		Expect(set).NotTo(BeEmpty(), "the admitting rule looked the guestbook pod up in a peer set: %+v", a.Path)
		runNft(node1, "delete", "element", "inet", table, set, "{ "+guestbook.net.IPv4.String()+" }")
		a = answer()
		Expect(a.Verdict).To(Equal(explain.Drop), "the kernel's table drops guestbook now")
		Expect(strings.Join(a.Drift, "\n")).To(ContainSubstring(set), "the drift names the set whose lookup differs")

		By("waiting for the next resync to read the table back and repair it")
		Eventually(func(g Gomega) {
			a := answer()
			g.Expect(a.Drift).To(BeEmpty())
			g.Expect(a.Verdict).To(Equal(explain.Accept))
		}).WithTimeout(3 * kernelResyncPeriod).WithPolling(50 * time.Millisecond).Should(Succeed())
	})

	It("lets busybox-2 reach redis on both nodes once it is labelled app=guestbook", func() {
		relabel(busybox2.object(), "app", "guestbook")
		want := map[string]string{}
		for pair, verdict := range isolated {
			want[pair] = verdict
		}
		want["busybox-2 -> redis-leader"] = allowed   // node 1 learns a peer on another node
		want["busybox-2 -> redis-follower"] = allowed // node 2 learns a peer on its own node
		Eventually(reachability).WithArguments(clients, servers).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).
			Should(Equal(want))
		for _, a := range []*kernelAgent{agent1, agent2} {
			Expect(elementOpsOnly(a.kernel.last())).To(BeTrue(), "%s adds the peer's addresses only:\n%s", a.nodeName, a.kernel.last())
		}
	})

	It("lets every pod reach redis again once the policy is deleted", func() {
		deletePolicy(kernelNamespace, "redis-policy")
		Eventually(reachability).WithArguments(clients, servers).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).
			Should(Equal(unisolated))
		for _, name := range []string{kernelNode1, kernelNode2} {
			Eventually(func(g Gomega) {
				ne := enforcementOf(name)
				g.Expect(ne).NotTo(BeNil())
				g.Expect(ne.Status.IsolatedPods).To(BeZero())
				g.Expect(ne.Status.PoliciesInEffect).To(BeZero())
			}).Should(Succeed())
		}
	})

	// Our chains accept tracked connections before any policy: the agent ends those that a new ruleset
	// denies, or a UDP flow from before the policy would keep passing.
	It("ends the tracked flows of pairs that a new policy denies", func() {
		dst := netip.AddrPortFrom(redisLeader.net.IPv4, redisPort)
		const srcPort = 40000
		Expect(requestUDPFromPort(busybox1, srcPort, dst, probeTimeout)).To(Succeed(), "allowed before the policy")

		Expect(k8sClient.Create(ctx, sampleRedisPolicy())).To(Succeed())
		Eventually(reachability).WithArguments([]*kernelPod{busybox1}, []*kernelPod{redisLeader}).
			WithTimeout(20*time.Second).WithPolling(200*time.Millisecond).
			Should(Equal(map[string]string{"busybox-1 -> redis-leader": denied}), "new flows are denied")
		Expect(requestUDPFromPort(busybox1, srcPort, dst, probeTimeout)).NotTo(Succeed(), "the flow from before the policy is denied too")
	})
})
