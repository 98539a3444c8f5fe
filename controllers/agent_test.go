package controllers_test

import (
	"net/netip"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

const (
	redisChain = "in_default_redis"
	dbChain    = "in_default_db"
	redisPort  = 6379
)

// redisPolicy is the guestbook's: only the frontend reaches redis.
func redisPolicy() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "redis-policy"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guestbook"}}}},
			}},
		},
	}
}

// redisFromFrontendTeam also lets every pod of the namespaces labelled team=frontend reach redis.
func redisFromFrontendTeam() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "redis-from-frontend-team"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "frontend"}}}},
			}},
		},
	}
}

// problemPolicy lets node-b's pods reach db on a named port that db does not define. The API server
// accepts it (named ports are resolved per pod), but for db the rule matches nothing: db stays isolated
// with no way in, and the agent reports the problem.
func problemPolicy() *networkingv1.NetworkPolicy {
	postgres := intstr.FromString("postgres")
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db-policy"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.2.0.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &postgres}},
			}},
		},
	}
}

const problemField = "spec.ingress[0].ports[0].port"

// problemCIDRMember is inside the problem policy's ipBlock.
var problemCIDRMember = netip.MustParseAddr("10.2.0.40")

func nodeEnforcement() *policyv1alpha1.NodeEnforcement {
	ne := &policyv1alpha1.NodeEnforcement{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: thisNode}, ne); err != nil {
		return nil
	}
	return ne
}

// counterValue returns the value of a counter with one label set to value.
func counterValue(name, label, value string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// fullyResolved is the table a full resolve of the cluster as the API server holds it gives.
func fullyResolved(g Gomega) *nft.Ruleset {
	snap, err := controllers.SnapshotOf(ctx, k8sClient, thisNode)
	g.Expect(err).NotTo(HaveOccurred())
	m := selectors.Resolve(snap)
	var addrs []netip.Addr
	for _, p := range m.LocalPods {
		addrs = append(addrs, p.IPs...)
	}
	ifaces, err := hostInterfaces.Interfaces(addrs)
	g.Expect(err).NotTo(HaveOccurred())
	return nft.Compile(nft.CompileInput{Table: table, Model: m, Interfaces: ifaces})
}

// metricValue returns a gauge's value, or a histogram's sample count.
func metricValue(name string) float64 {
	families, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name || len(f.GetMetric()) == 0 {
			continue
		}
		m := f.GetMetric()[0]
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		if c := m.GetCounter(); c != nil {
			sum := 0.0
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// dbPolicyProblems lists the problem Events on db-policy.
func dbPolicyProblems() []eventsv1.Event {
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace("default"))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "NetworkPolicy" && e.Regarding.Name == "db-policy" && e.Reason == controllers.ReasonPolicyProblem {
			out = append(out, e)
		}
	}
	return out
}

var _ = Describe("The agent of node-a", Ordered, func() {
	webNamespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	otherPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "other"}}

	BeforeAll(func() {
		createNamespace("default")
		createNamespace("web", "team", "web")
		createPod(makePod("default", "redis", withLabels("app", "redis"), onNode(thisNode), running(redisIP)))
		createPod(makePod("default", "guestbook", withLabels("app", "guestbook"), onNode(otherNode), running(guestbookIP)))
		createPod(makePod("default", "other", withLabels("app", "other"), onNode(otherNode), running(otherIP)))
		createPod(makePod("web", "frontend", withLabels("app", "frontend"), onNode(otherNode), running(frontendIP)))
		Expect(k8sClient.Create(ctx, redisPolicy())).To(Succeed())
	})

	It("isolates redis so that only the guestbook reaches it", func() {
		Eventually(func(g Gomega) {
			rs := programmed()
			g.Expect(redisPeers(rs, "default/redis-policy")).To(ConsistOf(guestbookIP))
		}).Should(Succeed())

		Expect(verdictFor(guestbookIP, redisIP, redisPort)).To(Equal(nft.Accept))
		Expect(verdictFor(otherIP, redisIP, redisPort)).To(Equal(nft.Drop))
		Expect(verdictFor(frontendIP, redisIP, redisPort)).To(Equal(nft.Drop))
		Expect(nft.Render(programmed())).To(ContainSubstring(`"veth-redis" . 10.1.0.10`), "anti-spoofing binds redis's address to its interface")
	})

	It("enforces a ClusterNetworkPolicy's Admin Deny over the NetworkPolicy, and withdraws it", func() {
		all := metav1.LabelSelector{}
		cnp := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny-guestbook-to-redis"}, Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier: v1beta1.AdminTier, Priority: 10,
			Subject: v1beta1.ClusterNetworkPolicySubject{Pods: &v1beta1.NamespacedPod{
				NamespaceSelector: all, PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}}},
			Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{
					NamespaceSelector: all, PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "guestbook"}}}}}}},
		}}
		Expect(k8sClient.Create(ctx, cnp)).To(Succeed())
		Eventually(func() nft.VerdictKind { return verdictFor(guestbookIP, redisIP, redisPort) }).Should(Equal(nft.Drop))
		Expect(verdictFor(otherIP, redisIP, redisPort)).To(Equal(nft.Drop), "still isolated by redis-policy")
		Expect(k8sClient.Delete(ctx, cnp)).To(Succeed())
		Eventually(func() nft.VerdictKind { return verdictFor(guestbookIP, redisIP, redisPort) }).Should(Equal(nft.Accept))
	})

	It("reports the enforcement on the node's NodeEnforcement", func() {
		Eventually(func(g Gomega) {
			ne := nodeEnforcement()
			g.Expect(ne).NotTo(BeNil())
			g.Expect(meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)).To(BeTrue())
			g.Expect(meta.IsStatusConditionFalse(ne.Status.Conditions, policyv1alpha1.ConditionDegraded)).To(BeTrue())
			g.Expect(ne.Status.LocalPods).To(BeEquivalentTo(1))
			g.Expect(ne.Status.IsolatedPods).To(BeEquivalentTo(1))
			g.Expect(ne.Status.PoliciesInEffect).To(BeEquivalentTo(1))
			g.Expect(ne.Status.Chains).To(BeEquivalentTo(len(programmed().Chains)))
			g.Expect(ne.Status.SetElements).To(BeNumerically(">=", 3)) // peer, map entry, anti-spoofing
			g.Expect(ne.Status.LastSyncTime).NotTo(BeNil())
			g.Expect(ne.Status.ObservedGeneration).To(Equal(ne.Generation))
		}).Should(Succeed())

		ne := nodeEnforcement()
		Expect(ne.Spec).To(Equal(policyv1alpha1.NodeEnforcementSpec{NodeName: thisNode, Table: table}))
		Expect(ne.OwnerReferences).To(ConsistOf(HaveField("Kind", "Node")))
		Expect(ne.OwnerReferences[0].Name).To(Equal(thisNode))
		Expect(reconciler.ReadyCheck(nil)).To(Succeed())
	})

	It("exports its metrics on controller-runtime's registry", func() {
		Eventually(func(g Gomega) {
			g.Expect(metricValue("nftpolicy_isolated_pods")).To(BeNumerically("==", 1))
			g.Expect(metricValue("nftpolicy_chains")).To(BeNumerically("==", len(programmed().Chains)))
			g.Expect(metricValue("nftpolicy_set_elements")).To(BeNumerically(">=", 3))
			g.Expect(metricValue("nftpolicy_sync_duration_seconds")).To(BeNumerically(">", 0), "syncs observed")
			g.Expect(metricValue("nftpolicy_programming_latency_seconds")).To(BeNumerically(">", 0), "latencies observed")
		}).Should(Succeed())
	})

	It("adds a relabelled pod to the peer set with element operations only", func() {
		relabel(otherPod, "app", "guestbook")
		Eventually(func() []netip.Addr {
			return redisPeers(programmed(), "default/redis-policy")
		}).Should(ConsistOf(guestbookIP, otherIP))
		Expect(elementOpsOnly(lastTransaction())).To(BeTrue(), lastTransaction().String())
		Expect(verdictFor(otherIP, redisIP, redisPort)).To(Equal(nft.Accept))
	})

	It("adds the pods of a relabelled namespace with element operations only", func() {
		Expect(k8sClient.Create(ctx, redisFromFrontendTeam())).To(Succeed())
		Eventually(func(g Gomega) {
			rules, ok := podRules(programmed(), redisChain)
			g.Expect(ok).To(BeTrue())
			g.Expect(rules).To(ContainElement(HaveField("Comment", HavePrefix("default/redis-from-frontend-team "))))
		}).Should(Succeed())
		Expect(redisPeers(programmed(), "default/redis-from-frontend-team")).To(BeEmpty())
		Expect(verdictFor(frontendIP, redisIP, redisPort)).To(Equal(nft.Drop))

		relabel(webNamespace, "team", "frontend")
		Eventually(func() []netip.Addr {
			return redisPeers(programmed(), "default/redis-from-frontend-team")
		}).Should(ConsistOf(frontendIP))
		Expect(elementOpsOnly(lastTransaction())).To(BeTrue(), lastTransaction().String())
		Expect(verdictFor(frontendIP, redisIP, redisPort)).To(Equal(nft.Accept))
	})

	It("follows a peer's new address with element operations only", func() {
		setPodIP("web", "frontend", frontendIP2)
		Eventually(func() []netip.Addr {
			return redisPeers(programmed(), "default/redis-from-frontend-team")
		}).Should(ConsistOf(frontendIP2))
		tx := lastTransaction()
		Expect(elementOpsOnly(tx)).To(BeTrue(), tx.String())
		Expect(tx.Ops).To(ContainElement(BeAssignableToTypeOf(nft.DeleteElements{})), tx.String())
		Expect(verdictFor(frontendIP2, redisIP, redisPort)).To(Equal(nft.Accept))
		Expect(verdictFor(frontendIP, redisIP, redisPort)).To(Equal(nft.Drop))
	})

	It("withdraws a deleted policy without replacing the table", func() {
		deletePolicy("default", "redis-from-frontend-team")
		Eventually(func(g Gomega) {
			rules, ok := podRules(programmed(), redisChain)
			g.Expect(ok).To(BeTrue())
			g.Expect(rules).NotTo(ContainElement(HaveField("Comment", HavePrefix("default/redis-from-frontend-team "))))
		}).Should(Succeed())
		tx := lastTransaction()
		Expect(fullReplace(tx)).To(BeFalse(), tx.String())
		Expect(tx.Ops).To(ContainElement(nft.FlushChain{Name: redisChain}), tx.String())
		Expect(tx.Ops).NotTo(ContainElement(BeAssignableToTypeOf(nft.DeleteMapElements{})), "redis stays isolated by redis-policy")
		Expect(verdictFor(frontendIP2, redisIP, redisPort)).To(Equal(nft.Drop))
		Expect(verdictFor(guestbookIP, redisIP, redisPort)).To(Equal(nft.Accept))
	})

	It("programs, after the events above, what a full resolve of the cluster gives", func() {
		Eventually(func(g Gomega) {
			g.Expect(nft.Render(programmed())).To(Equal(nft.Render(fullyResolved(g))))
		}).Should(Succeed())
		Expect(counterValue("nftpolicy_cache_reads_total", "scope", "changed")).To(BeNumerically(">", 0),
			"the events above were synced by reading only the changed objects")
		Expect(counterValue("nftpolicy_cache_reads_total", "scope", "all")).To(BeNumerically(">", 0),
			"the first sync and the periodic resyncs read the whole cache")
		// The suite runs the agent with VerifyIncremental: every one of those syncs was compared with a
		// full resolve of the cache.
		Expect(metricValue("nftpolicy_incremental_mismatches_total")).To(BeZero())
	})

	It("retries a failed transaction by replacing the whole table at once", func() {
		failuresBefore := metricValue("nftpolicy_sync_failures_total")
		failNextTransactions.Store(1)
		relabel(otherPod, "app", "other")
		Eventually(func() []netip.Addr {
			return redisPeers(programmed(), "default/redis-policy")
		}).Should(ConsistOf(guestbookIP))
		tx := lastTransaction()
		Expect(fullReplace(tx)).To(BeTrue(), "after a failure the kernel's state is unknown: %s", tx.String())
		Expect(metricValue("nftpolicy_sync_failures_total")).To(BeNumerically(">", failuresBefore))
		Expect(verdictFor(otherIP, redisIP, redisPort)).To(Equal(nft.Drop))
		Expect(verdictFor(guestbookIP, redisIP, redisPort)).To(Equal(nft.Accept))
	})

	// tamper changes the fake kernel's table as another writer would: it deletes one element of a
	// set of the committed table, and returns a description of the change.
	tamper := func() string {
		rs := reconciler.Applier.Committed()
		Expect(rs).NotTo(BeNil())
		for _, set := range rs.Sets {
			if len(set.Elements) > 0 {
				del := nft.DeleteElements{Set: set.Name, Type: set.Type, Interval: set.Interval, Elements: set.Elements[:1]}
				Expect(kernel.Run(&nft.Transaction{Table: table, Ops: []nft.Op{del}})).To(Succeed())
				return "element deleted from set " + set.Name
			}
		}
		Fail("no set with elements to tamper with")
		return ""
	}
	driftEvents := func() []eventsv1.Event {
		var list eventsv1.EventList
		Expect(k8sClient.List(ctx, &list)).To(Succeed())
		var out []eventsv1.Event
		for _, e := range list.Items {
			if e.Regarding.Kind == "NodeEnforcement" && e.Regarding.Name == thisNode && e.Reason == policyv1alpha1.ReasonDrifted {
				out = append(out, e)
			}
		}
		return out
	}

	It("says Drifted while the repair of a foreign change fails, and repairs it whole", func() {
		eventsBefore := len(driftEvents())
		repairsBefore := counterValue("nftpolicy_drift_repairs_total", "cause", policyv1alpha1.DriftCauseNotification)
		change := tamper()
		Expect(kernel.Check(reconciler.Applier.Committed())).NotTo(BeEmpty())
		// Enough failures, retried with backoff, for the status to show them for a while.
		failNextTransactions.Store(10)
		foreignNews <- nft.ForeignChange{At: time.Now(), Detail: change + " by a test"}
		Eventually(func(g Gomega) {
			ne := nodeEnforcement()
			programmed := meta.FindStatusCondition(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)
			g.Expect(programmed).NotTo(BeNil())
			g.Expect(programmed.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(programmed.Reason).To(Equal(policyv1alpha1.ReasonDrifted))
			g.Expect(programmed.Message).To(ContainSubstring(change + " by a test"))
		}).WithPolling(20 * time.Millisecond).Should(Succeed())

		Eventually(func(g Gomega) {
			ne := nodeEnforcement()
			g.Expect(meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)).To(BeTrue())
			g.Expect(ne.Status.LastDriftRepair).NotTo(BeNil())
			g.Expect(ne.Status.LastDriftRepair.Cause).To(Equal(policyv1alpha1.DriftCauseNotification))
			g.Expect(ne.Status.LastDriftRepair.Message).To(Equal(change + " by a test"))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(kernel.Check(reconciler.Applier.Committed())).To(BeEmpty(), "the fake holds what the agent committed")
		Expect(fullReplace(lastTransaction())).To(BeTrue(), "a repair replaces the whole table")
		Expect(counterValue("nftpolicy_drift_repairs_total", "cause", policyv1alpha1.DriftCauseNotification)).To(Equal(repairsBefore + 1))
		Eventually(driftEvents).Should(HaveLen(eventsBefore + 1))
		Expect(driftEvents()[eventsBefore].Note).To(ContainSubstring(change))
	})

	It("finds a foreign change no notification told of by reading the table back on a resync", func() {
		repairsBefore := counterValue("nftpolicy_drift_repairs_total", "cause", policyv1alpha1.DriftCauseReadBack)
		change := tamper()
		Eventually(func() float64 {
			return counterValue("nftpolicy_drift_repairs_total", "cause", policyv1alpha1.DriftCauseReadBack)
		}).Should(Equal(repairsBefore + 1))
		Expect(kernel.Check(reconciler.Applier.Committed())).To(BeEmpty())
		Eventually(func(g Gomega) {
			rep := nodeEnforcement().Status.LastDriftRepair
			g.Expect(rep).NotTo(BeNil())
			g.Expect(rep.Cause).To(Equal(policyv1alpha1.DriftCauseReadBack))
			g.Expect(rep.Message).To(ContainSubstring(strings.TrimPrefix(change, "element deleted from set ")))
		}).Should(Succeed())
	})

	It("reads the table back after notifications were lost, and replaces nothing when it is intact", func() {
		lostBefore := metricValue("nftpolicy_notifications_lost_total")
		txs := len(kernel.Transactions())
		foreignNews <- nft.ForeignChange{At: time.Now(), Lost: true, Detail: "test: socket overrun"}
		Eventually(func() float64 { return metricValue("nftpolicy_notifications_lost_total") }).Should(Equal(lostBefore + 1))
		Consistently(func() int { return len(kernel.Transactions()) }, time.Second).Should(Equal(txs))
	})

	Context("with a policy it cannot enforce as written", func() {
		BeforeAll(func() {
			createPod(makePod("default", "db", withLabels("app", "db"), onNode(thisNode), running(dbIP)))
			Expect(k8sClient.Create(ctx, problemPolicy())).To(Succeed())
		})

		It("keeps the selected pod isolated: the broken part matches nothing", func() {
			Eventually(func(g Gomega) {
				c, ok := findChain(programmed(), dbChain)
				g.Expect(ok).To(BeTrue())
				g.Expect(c.Rules).To(HaveLen(1), "only the final drop")
				g.Expect(c.Rules[0].Verdict.Kind).To(Equal(nft.Drop))
			}).Should(Succeed())
			for _, src := range []netip.Addr{guestbookIP, otherIP, frontendIP2, problemCIDRMember} {
				Expect(verdictFor(src, dbIP, 5432)).To(Equal(nft.Drop), "from %s", src)
			}
		})

		It("lists the problem in the status and marks the node Degraded", func() {
			Eventually(func(g Gomega) {
				ne := nodeEnforcement()
				g.Expect(ne).NotTo(BeNil())
				g.Expect(ne.Status.ProblemCount).To(BeEquivalentTo(1))
				g.Expect(ne.Status.Problems).To(ConsistOf(And(
					HaveField("PolicyNamespace", "default"),
					HaveField("PolicyName", "db-policy"),
					HaveField("Field", problemField),
				)))
				degraded := meta.FindStatusCondition(ne.Status.Conditions, policyv1alpha1.ConditionDegraded)
				g.Expect(degraded).NotTo(BeNil())
				g.Expect(degraded.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(degraded.Reason).To(Equal(policyv1alpha1.ReasonPolicyProblems))
				g.Expect(meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)).To(BeTrue())
			}).Should(Succeed())
		})

		It("reports the problem once as an Event on the policy", func() {
			Eventually(func() []eventsv1.Event { return dbPolicyProblems() }).Should(HaveLen(1))
			Expect(dbPolicyProblems()[0].Type).To(Equal(corev1.EventTypeWarning))
			Expect(dbPolicyProblems()[0].Note).To(ContainSubstring(problemField))

			// More syncs, from a relevant change and from the periodic resync, do not repeat it.
			relabel(otherPod, "app", "guestbook")
			Eventually(func() []netip.Addr {
				return redisPeers(programmed(), "default/redis-policy")
			}).Should(ConsistOf(guestbookIP, otherIP))
			Consistently(func() []eventsv1.Event { return dbPolicyProblems() }, 3*time.Second).Should(HaveLen(1))
		})
	})
})
