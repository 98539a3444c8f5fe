package e2e

// Helpers of the specs that change a lab while policies are enforced: pods that come and go, a
// recycled address, an agent that dies. Their clusters are small and their own; pods are written
// "namespace/pod" as in the scenario files, and every probe is TCP to port 80.

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const (
	// probePort is what every pod of these specs serves, over TCP.
	probePort = 80
	// convergeTimeout is how long a change may take to show, as a scenario step's deadline.
	convergeTimeout = scenario.DefaultDeadline
	// steadyFor is how long a verdict must then hold.
	steadyFor = 3 * time.Second
)

// webPod is a pod serving TCP on probePort with labels.
func webPod(name string, labels map[string]string) scenario.Pod {
	return scenario.Pod{
		Name:   name,
		Labels: labels,
		Ports:  []scenario.Port{{Name: "http", Port: probePort, Protocol: scenario.ProtocolTCP}},
	}
}

// setUpCluster creates a one-namespace cluster whose pods land on the lab's nodes round-robin, and
// removes it when the spec ends.
func setUpCluster(ctx context.Context, l *lab.Lab, namespace string, pods ...scenario.Pod) {
	spec := scenario.ClusterSpec{Namespaces: []scenario.Namespace{{
		Name: namespace, Labels: map[string]string{"ns": namespace}, Pods: pods,
	}}}
	DeferCleanup(func(ctx SpecContext) {
		Expect(l.Teardown(ctx)).To(Succeed())
	}, NodeTimeout(2*time.Minute))
	Expect(l.Setup(ctx, spec)).To(Succeed())
}

// applyPolicies applies NetworkPolicy YAML and waits until every agent programmed it.
func applyPolicies(ctx context.Context, l *lab.Lab, manifests string) {
	policies, err := scenario.ParsePolicies(manifests)
	Expect(err).NotTo(HaveOccurred())
	Expect(l.ApplyPolicies(ctx, policies)).To(Succeed())
	Expect(l.WaitProgrammed(ctx)).To(Succeed())
}

// expectNode checks that a pod runs on the node the spec's plan puts it on.
func expectNode(l *lab.Lab, pod, node string) {
	GinkgoHelper()
	got, err := l.NodeOf(pod)
	Expect(err).NotTo(HaveOccurred())
	Expect(got).To(Equal(node), "pod %s", pod)
}

// connects probes src -> dst once for family: a new TCP connection to probePort.
func connects(ctx context.Context, l *lab.Lab, src, dst string, family scenario.Family) bool {
	ok, err := l.Probe(ctx, src, dst, probePort, scenario.ProtocolTCP, family)
	Expect(err).NotTo(HaveOccurred(), "probing %s -> %s (%s)", src, dst, family)
	return ok
}

// verdicts are the expected outcomes of pairs: true allowed, false blocked.
type verdicts map[scenario.Pair]bool

// observe probes every pair for family at once.
func (v verdicts) observe(ctx context.Context, l *lab.Lab, family scenario.Family) verdicts {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		got = verdicts{}
	)
	for pair := range v {
		wg.Go(func() {
			defer GinkgoRecover()
			ok := connects(ctx, l, pair.Src, pair.Dst, family)
			mu.Lock()
			got[pair] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// expectNow requires every pair to observe its verdict right away, on every family of the lab, for
// steadyFor: nothing is left to converge.
func (v verdicts) expectNow(ctx context.Context, l *lab.Lab) {
	GinkgoHelper()
	for _, family := range l.Families() {
		Consistently(ctx, func(ctx context.Context) verdicts { return v.observe(ctx, l, family) }).
			WithTimeout(steadyFor).WithPolling(200*time.Millisecond).
			Should(Equal(v), "%s\n%s", family, lazyListings{ctx, l})
	}
}

// expectConverged requires every pair to reach its verdict within convergeTimeout and keep it for
// steadyFor, on every family of the lab.
func (v verdicts) expectConverged(ctx context.Context, l *lab.Lab) {
	GinkgoHelper()
	for _, family := range l.Families() {
		observe := func(ctx context.Context) verdicts { return v.observe(ctx, l, family) }
		Eventually(ctx, observe).WithTimeout(convergeTimeout).WithPolling(time.Second).
			Should(Equal(v), "%s: did not converge\n%s", family, lazyListings{ctx, l})
		Consistently(ctx, observe).WithTimeout(steadyFor).WithPolling(200*time.Millisecond).
			Should(Equal(v), "%s: converged, then changed\n%s", family, lazyListings{ctx, l})
	}
}

// lazyListings renders the kernel tables only when a failure message prints them.
type lazyListings struct {
	ctx context.Context
	l   *lab.Lab
}

func (ll lazyListings) String() string { return kernelListings(context.WithoutCancel(ll.ctx), ll.l) }

// pair builds a scenario.Pair.
func pair(src, dst string) scenario.Pair { return scenario.Pair{Src: src, Dst: dst} }

// nodeEnforcement reads a node's NodeEnforcement.
func nodeEnforcement(ctx context.Context, l *lab.Lab, node string) (*policyv1alpha1.NodeEnforcement, error) {
	var ne policyv1alpha1.NodeEnforcement
	if err := l.Client().Get(ctx, types.NamespacedName{Name: node}, &ne); err != nil {
		return nil, fmt.Errorf("getting the NodeEnforcement of %s: %w", node, err)
	}
	return &ne, nil
}
