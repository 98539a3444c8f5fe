package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// lifecycleSpecTimeout bounds one lifecycle spec: a few convergence waits per family.
const lifecycleSpecTimeout = 5 * time.Minute

// webFromFrontend isolates the app=web pods of new-pods for ingress and lets only its role=frontend
// pods in.
const webFromFrontend = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-frontend, namespace: new-pods}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: frontend}}}]
`

// describeNewPodSpecs: a pod created after a policy that selects it is isolated by the time its node
// reports it programmed, on its own node and across the fabric; a new pod matching a policy's peer
// selector is let in the same way.
//
//	new-pods/frontend-1  node 1  role=frontend   set up before the policy
//	new-pods/frontend-2  node 2  role=frontend
//	new-pods/intruder-1  node 1  (no labels)
//	new-pods/intruder-2  node 2  (no labels)
//	new-pods/web-1       node 1  app=web         created after the policy
//	new-pods/web-2       node 2  app=web
//	new-pods/frontend-3  node 2  role=frontend   created after web-1 and web-2
func describeNewPodSpecs(env *labEnv) {
	It("isolates a pod created after the policy that selects it", Label("pod-lifecycle"), func(ctx SpecContext) {
		l := env.lab
		nodes := l.NodeNames()
		setUpCluster(ctx, l, "new-pods",
			webPod("frontend-1", map[string]string{"role": "frontend"}),
			webPod("frontend-2", map[string]string{"role": "frontend"}),
			webPod("intruder-1", nil),
			webPod("intruder-2", nil),
		)
		expectNode(l, "new-pods/frontend-1", nodes[0])
		expectNode(l, "new-pods/frontend-2", nodes[1])
		applyPolicies(ctx, l, webFromFrontend)

		By("creating a web pod on each node after the policy")
		Expect(l.AddPod(ctx, "new-pods", webPod("web-1", map[string]string{"app": "web"}), nodes[0])).To(Succeed())
		Expect(l.AddPod(ctx, "new-pods", webPod("web-2", map[string]string{"app": "web"}), nodes[1])).To(Succeed())
		Expect(l.WaitProgrammed(ctx)).To(Succeed())

		By("probing them once their nodes report them programmed: no convergence allowed")
		verdicts{
			pair("new-pods/intruder-1", "new-pods/web-1"): false, // same node
			pair("new-pods/intruder-2", "new-pods/web-1"): false, // across the fabric
			pair("new-pods/intruder-1", "new-pods/web-2"): false,
			pair("new-pods/intruder-2", "new-pods/web-2"): false,
			pair("new-pods/frontend-1", "new-pods/web-1"): true,
			pair("new-pods/frontend-2", "new-pods/web-1"): true,
			pair("new-pods/frontend-1", "new-pods/web-2"): true,
			pair("new-pods/web-1", "new-pods/web-2"):      false,
			pair("new-pods/web-1", "new-pods/intruder-2"): true, // web pods are isolated for ingress only
		}.expectNow(ctx, l)

		By("creating a frontend pod after the web pods: the policy's peers grow")
		Expect(l.AddPod(ctx, "new-pods", webPod("frontend-3", map[string]string{"role": "frontend"}), nodes[1])).To(Succeed())
		Expect(l.WaitProgrammed(ctx)).To(Succeed())
		verdicts{
			pair("new-pods/frontend-3", "new-pods/web-1"): true,
			pair("new-pods/frontend-3", "new-pods/web-2"): true,
		}.expectConverged(ctx, l)
	}, SpecTimeout(lifecycleSpecTimeout))
}

// guardAndLocked: ip-reuse/guard lets only app=trusted pods in; app=locked pods let nobody in.
const guardAndLocked = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: guard-from-trusted, namespace: ip-reuse}
spec:
  podSelector: {matchLabels: {app: guard}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: trusted}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: locked-deny-ingress, namespace: ip-reuse}
spec:
  podSelector: {matchLabels: {app: locked}}
  policyTypes: [Ingress]
`

// describeIPReuseSpecs: an address freed by a deleted pod and handed to a new pod with other labels
// carries the new pod's verdicts, both where the address is a policy's peer and where it is the
// isolated destination, whichever way the verdict flips.
//
//	ip-reuse/guard    node 1  app=guard     isolated: only app=trusted may connect
//	ip-reuse/client   node 2  (no labels)
//	ip-reuse/old      node 2  app=trusted   reaches guard; open to client
//	ip-reuse/locked   node 2  app=locked    gets old's address: blocked to guard; closed to client
//	ip-reuse/renewed  node 2  app=trusted   gets it back: reaches guard; open to client
func describeIPReuseSpecs(env *labEnv) {
	It("gives a reused pod IP the new pod's policy, not the old pod's", Label("pod-lifecycle"), func(ctx SpecContext) {
		l := env.lab
		nodes := l.NodeNames()
		setUpCluster(ctx, l, "ip-reuse",
			webPod("guard", map[string]string{"app": "guard"}),
			webPod("client", nil),
		)
		expectNode(l, "ip-reuse/guard", nodes[0])
		expectNode(l, "ip-reuse/client", nodes[1])
		Expect(l.AddPod(ctx, "ip-reuse", webPod("old", map[string]string{"app": "trusted"}), nodes[1])).To(Succeed())
		applyPolicies(ctx, l, guardAndLocked)
		verdicts{
			pair("ip-reuse/old", "ip-reuse/guard"):    true,
			pair("ip-reuse/client", "ip-reuse/guard"): false,
			pair("ip-reuse/client", "ip-reuse/old"):   true,
		}.expectConverged(ctx, l)

		addr := map[scenario.Family]string{}
		for _, family := range l.Families() {
			ip, err := l.PodIP("ip-reuse/old", family)
			Expect(err).NotTo(HaveOccurred())
			addr[family] = ip.String()
		}
		ip4, err := l.PodIP("ip-reuse/old", scenario.IPv4)
		Expect(err).NotTo(HaveOccurred())
		replace := func(oldPod, newPod string, labels map[string]string) {
			GinkgoHelper()
			Expect(l.DeletePod(ctx, "ip-reuse/"+oldPod)).To(Succeed())
			Expect(l.AddPodReusingIP(ctx, "ip-reuse", webPod(newPod, labels), nodes[1], ip4)).To(Succeed())
			for _, family := range l.Families() {
				ip, err := l.PodIP("ip-reuse/"+newPod, family)
				Expect(err).NotTo(HaveOccurred())
				Expect(ip.String()).To(Equal(addr[family]), "%s reuses the %s address of %s", newPod, family, oldPod)
			}
			Expect(l.WaitProgrammed(ctx)).To(Succeed())
		}

		By("deleting the trusted pod and giving its address to a locked pod at once")
		replace("old", "locked", map[string]string{"app": "locked"})
		verdicts{
			pair("ip-reuse/locked", "ip-reuse/guard"):  false, // the address is no longer a trusted peer
			pair("ip-reuse/client", "ip-reuse/locked"): false, // the address is now isolated
			pair("ip-reuse/client", "ip-reuse/guard"):  false,
			pair("ip-reuse/guard", "ip-reuse/client"):  true,
		}.expectConverged(ctx, l)

		By("deleting the locked pod and giving the address to a trusted pod again")
		replace("locked", "renewed", map[string]string{"app": "trusted"})
		verdicts{
			pair("ip-reuse/renewed", "ip-reuse/guard"):  true,
			pair("ip-reuse/client", "ip-reuse/renewed"): true,
			pair("ip-reuse/client", "ip-reuse/guard"):   false,
		}.expectConverged(ctx, l)
	}, SpecTimeout(lifecycleSpecTimeout))
}
