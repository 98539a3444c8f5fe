package e2e

// Specs of traffic through Services that the scenario format cannot state: hairpin (a pod through its
// own Service back to itself, a self pair the format never probes), a Service whose named targetPort
// is a different number on each backend, and a Service that selects no pod.

import (
	"context"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// serviceVerdict is what a probe through a Service must observe.
type serviceVerdict struct {
	src, svc string // svc is "namespace/name"
	port     int
	protocol string
	allowed  bool
}

// expectConverged requires the verdict within convergeTimeout, kept for steadyFor, on every family
// of the lab. A probe that cannot run (no endpoints yet) is not a verdict: it is polled again.
func (v serviceVerdict) expectConverged(ctx context.Context, l *lab.Lab, why string) {
	GinkgoHelper()
	for _, family := range l.Families() {
		observe := func(ctx context.Context) (bool, error) {
			return l.ProbeNamedService(ctx, v.src, v.svc, v.port, v.protocol, family)
		}
		Eventually(ctx, observe).WithTimeout(convergeTimeout).WithPolling(time.Second).
			Should(Equal(v.allowed), "%s -> Service %s %s/%d (%s): %s\n%s", v.src, v.svc, v.protocol, v.port, family, why, lazyListings{ctx, l})
		Consistently(ctx, observe).WithTimeout(steadyFor).WithPolling(200*time.Millisecond).
			Should(Equal(v.allowed), "%s -> Service %s (%s): %s, then changed\n%s", v.src, v.svc, family, why, lazyListings{ctx, l})
	}
}

// setUpServiceCluster sets c up and tears it down when the spec ends.
func setUpServiceCluster(ctx context.Context, l *lab.Lab, c scenario.ClusterSpec) {
	DeferCleanup(func(ctx SpecContext) {
		Expect(l.Teardown(ctx)).To(Succeed())
	}, NodeTimeout(2*time.Minute))
	Expect(l.Setup(ctx, c)).To(Succeed())
}

// describeServiceSpecs:
//
//	hairpin/web-1   node 1  app=web       its own Service svc-web-1, TCP 80
//	hairpin/web-2   node 2  app=web
//	hairpin/client  node 1  role=client
func describeServiceSpecs(env *labEnv) {
	It("judges hairpin traffic by both the pod's egress and its ingress policies", Label("service"), func(ctx SpecContext) {
		l := env.lab
		setUpCluster(ctx, l, "hairpin",
			webPod("web-1", map[string]string{"app": "web"}),
			webPod("web-2", map[string]string{"app": "web"}),
			webPod("client", map[string]string{"role": "client"}),
		)
		hairpin := func(allowed bool) serviceVerdict {
			return serviceVerdict{"hairpin/web-1", "hairpin/" + scenario.PodServiceName("web-1"), probePort, scenario.ProtocolTCP, allowed}
		}
		fromClient := func(allowed bool) serviceVerdict {
			return serviceVerdict{"hairpin/client", "hairpin/" + scenario.PodServiceName("web-1"), probePort, scenario.ProtocolTCP, allowed}
		}
		hairpin(true).expectConverged(ctx, l, "no policy")

		By("admitting only role=client in: web-1's ingress refuses web-1 itself")
		applyPolicies(ctx, l, policyYAML("web-ingress", "Ingress", "from", "role: client"))
		hairpin(false).expectConverged(ctx, l, "ingress admits role=client only")
		fromClient(true).expectConverged(ctx, l, "ingress admits role=client")

		By("admitting only app=web in: web-1 reaches itself, the client does not")
		applyPolicies(ctx, l, policyYAML("web-ingress", "Ingress", "from", "app: web"))
		hairpin(true).expectConverged(ctx, l, "ingress admits app=web")
		fromClient(false).expectConverged(ctx, l, "ingress admits app=web only")

		By("letting app=web out to role=client only: web-1's egress refuses web-1 itself")
		applyPolicies(ctx, l, policyYAML("web-egress", "Egress", "to", "role: client"))
		hairpin(false).expectConverged(ctx, l, "ingress admits app=web, egress lets out to role=client only")

		By("letting app=web out to app=web: both directions admit the hairpin")
		applyPolicies(ctx, l, policyYAML("web-egress", "Egress", "to", "app: web"))
		hairpin(true).expectConverged(ctx, l, "ingress admits app=web, egress lets out to app=web")
	}, SpecTimeout(lifecycleSpecTimeout))

	It("forwards a named targetPort to each backend's own number, judged there", Label("service"), func(ctx SpecContext) {
		l := env.lab
		s, err := scenario.Load(filepath.Join("scenarios", "service-named-target-port.yaml"))
		Expect(err).NotTo(HaveOccurred())
		cluster := *s.Cluster
		setUpServiceCluster(ctx, l, cluster)
		web := func(src string, allowed bool) serviceVerdict {
			return serviceVerdict{src, "web/web", 80, scenario.ProtocolTCP, allowed}
		}

		By("leaving web/one alone behind Service web: http is its 8080")
		Expect(l.Relabel(ctx, scenario.Relabel{Kind: scenario.KindPod, Name: "web/two", Labels: map[string]string{"app": "retired"}})).To(Succeed())
		web("web/client", true).expectConverged(ctx, l, "web/one serves http on 8080")

		By("leaving web/two alone behind Service web: http is its 9090")
		Expect(l.Relabel(ctx, scenario.Relabel{Kind: scenario.KindPod, Name: "web/two", Labels: map[string]string{"app": "web"}})).To(Succeed())
		Expect(l.Relabel(ctx, scenario.Relabel{Kind: scenario.KindPod, Name: "web/one", Labels: map[string]string{"app": "retired"}})).To(Succeed())
		web("web/client", true).expectConverged(ctx, l, "web/two serves http on 9090")

		By("opening http to app=client of namespace web only")
		applyPolicies(ctx, l, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-http, namespace: web}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
`)
		web("web/client", true).expectConverged(ctx, l, "allow-http admits web/client to http")
		web("other/client", false).expectConverged(ctx, l, "allow-http admits only pods of namespace web")
	}, SpecTimeout(lifecycleSpecTimeout))

	It("says a Service that selects no pod has no endpoints, never that it is blocked", Label("service"), func(ctx SpecContext) {
		l := env.lab
		cluster := scenario.ClusterSpec{Namespaces: []scenario.Namespace{{
			Name:     "nobody",
			Pods:     []scenario.Pod{webPod("client", map[string]string{"role": "client"})},
			Services: []scenario.Service{{Name: "nobody", Selector: map[string]string{"app": "nobody"}, Ports: []scenario.ServicePort{{Port: 80, Protocol: scenario.ProtocolTCP}}}},
		}}}
		setUpServiceCluster(ctx, l, cluster)
		for _, family := range l.Families() {
			_, err := l.ProbeNamedService(ctx, "nobody/client", "nobody/nobody", 80, scenario.ProtocolTCP, family)
			Expect(err).To(MatchError(lab.ErrNoEndpoints), "%s", family)
			Expect(err.Error()).To(ContainSubstring("no endpoints"))
		}
	}, SpecTimeout(lifecycleSpecTimeout))
}

// policyYAML is a policy of namespace hairpin selecting app=web with one rule of direction to or
// from the pods labelled peer.
func policyYAML(name, policyType, direction, peer string) string {
	rule := "ingress"
	if policyType == "Egress" {
		rule = "egress"
	}
	return `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ` + name + `, namespace: hairpin}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [` + policyType + `]
  ` + rule + `:
  - ` + direction + `: [{podSelector: {matchLabels: {` + peer + `}}}]
`
}
