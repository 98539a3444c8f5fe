package controllers_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/droplog"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Audit mode on the kernel: one node whose agent runs with --drop-log=namespace, in a namespace
// with no log annotation (audited policies are logged whatever it says).
//
//	kernel-node-audit: kernel-audit/db    198.18.1.1  app=db     serves TCP+UDP 6379, TCP 6380
//	                   kernel-audit/web   198.18.1.2  app=web    serves TCP 6379
//	                   kernel-audit/other 198.18.1.3  app=other
//
// db is selected only by the audited policy db-trial (ingress from app=web on 6379, TCP and UDP);
// web by the enforced web-lock (no ingress rule) and the audited web-trial (ingress from app=other
// on TCP 6379).
var _ = Describe("Audit mode on the kernel", Ordered, Label("kernel"), func() {
	const (
		auditNamespace = "kernel-audit"
		auditNode      = "kernel-node-audit"
		otherPort      = redisPort + 1
	)
	var (
		db, web, other *kernelPod
		out            *lines
	)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := intstr.FromInt32(redisPort)
	ingressFrom := func(app string, protocols ...corev1.Protocol) []networkingv1.NetworkPolicyIngressRule {
		rule := networkingv1.NetworkPolicyIngressRule{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}}}
		for i := range protocols {
			rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: &protocols[i], Port: &port})
		}
		return []networkingv1.NetworkPolicyIngressRule{rule}
	}
	policy := func(name, app string, mode string, ingress []networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
		np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: auditNamespace, Name: name}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     ingress,
		}}
		if mode != "" {
			np.Annotations = map[string]string{selectors.ModeAnnotation: mode}
		}
		return np
	}
	setMode := func(name, mode string) {
		np := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: auditNamespace, Name: name}, np)).To(Succeed())
		np.Annotations = map[string]string{selectors.ModeAnnotation: mode}
		Expect(k8sClient.Update(ctx, np)).To(Succeed())
	}
	// flowsOf names the flows of the entries of one verdict: "source pod protocol/port".
	flowsOf := func(verdict string) []string {
		var flows []string
		for _, e := range out.entries() {
			if e.Verdict == verdict {
				flows = append(flows, fmt.Sprintf("%s %s/%d", e.Src.Pod, e.Protocol, e.Dst.Port))
			}
		}
		slices.Sort(flows)
		return slices.Compact(flows)
	}

	BeforeAll(func() {
		skipWithoutKernel()
		lab, err := netlab.New()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(lab.Close()).To(Succeed()) })
		node, err := lab.AddNode()
		Expect(err).NotTo(HaveOccurred())
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: auditNode}}))).To(Succeed())
		createNamespace(auditNamespace)
		db = addKernelPodIn(auditNamespace, node, auditNode, "db", "app", "db")
		web = addKernelPodIn(auditNamespace, node, auditNode, "web", "app", "web")
		other = addKernelPodIn(auditNamespace, node, auditNode, "other", "app", "other")
		for _, s := range []struct {
			pod  *kernelPod
			port uint16
		}{{db, redisPort}, {db, otherPort}, {web, redisPort}} {
			srv, err := s.pod.net.Serve(s.port)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(srv.Close)
		}
		policies := []*networkingv1.NetworkPolicy{
			policy("db-trial", "db", selectors.ModeAudit, ingressFrom("web", tcp, udp)),
			policy("web-lock", "web", "", nil),
			policy("web-trial", "web", selectors.ModeAudit, ingressFrom("other", tcp)),
		}
		out, _ = startLoggingAgent(auditNode, node, 8, policies, db, web, other)
		By("waiting until web-lock is enforced")
		Eventually(func() error { return other.net.ConnectTCP(netip.AddrPortFrom(web.net.IPv4, redisPort), probeTimeout) }).
			WithTimeout(20 * time.Second).ShouldNot(Succeed())
	})

	It("refuses, once the audited policy is enforced, exactly the connections it logged as would-drop", func() {
		type flow struct {
			from  *kernelPod
			proto corev1.Protocol
			port  uint16
		}
		mix := []flow{{web, tcp, redisPort}, {web, tcp, otherPort}, {other, tcp, redisPort}, {other, tcp, otherPort}}
		live := []*kernelPod{web, other} // UDP flows to db's 6379 from a fixed source port: conntrack holds them
		const livePort = 41000
		probe := func(f flow) error {
			return f.from.net.ConnectTCP(netip.AddrPortFrom(db.net.IPv4, f.port), probeTimeout)
		}
		name := func(p *kernelPod, proto corev1.Protocol, port uint16) string {
			return fmt.Sprintf("%s %s/%d", p.name, strings.ToLower(string(proto)), port)
		}

		By("running the traffic mix while db-trial is audited: everything passes")
		for _, f := range mix {
			Expect(probe(f)).To(Succeed(), name(f.from, f.proto, f.port))
		}
		for _, p := range live {
			Expect(requestUDPFromPort(p, livePort, netip.AddrPortFrom(db.net.IPv4, redisPort), probeTimeout)).To(Succeed(), p.name)
		}
		Eventually(func() []string { return flowsOf("would-drop") }).WithTimeout(5 * time.Second).
			Should(ContainElement("other tcp/6379"))
		time.Sleep(1500 * time.Millisecond) // every window flushed
		wouldDrop := flowsOf("would-drop")
		for _, e := range out.entries() {
			if e.Verdict == "would-drop" {
				Expect(e.Reason).To(Equal(droplog.ReasonAudit))
				Expect(e.Policies).To(Equal([]string{auditNamespace + "/db-trial"}))
				Expect(e.Pod).To(Equal(auditNamespace + "/db"))
			}
		}

		By("enforcing db-trial")
		setMode("db-trial", selectors.ModeEnforce)
		Eventually(func() error { return probe(flow{other, tcp, redisPort}) }).WithTimeout(20 * time.Second).ShouldNot(Succeed())

		By("probing the same mix, and the live flows")
		var refused []string
		for _, f := range mix {
			if probe(f) != nil {
				refused = append(refused, name(f.from, f.proto, f.port))
			}
		}
		for _, p := range live {
			if requestUDPFromPort(p, livePort, netip.AddrPortFrom(db.net.IPv4, redisPort), probeTimeout) != nil {
				refused = append(refused, name(p, udp, redisPort))
			}
		}
		slices.Sort(refused)
		Expect(refused).To(Equal(wouldDrop))
		// Not an empty set by accident: the mix has would-drops of both kinds.
		Expect(wouldDrop).To(ContainElements("other tcp/6379", "web tcp/6380", "other udp/6379"))
	})

	It("logs as would-allow what an audited rule admits and the enforced policies drop", func() {
		dst := netip.AddrPortFrom(web.net.IPv4, redisPort)
		Expect(other.net.ConnectTCP(dst, probeTimeout)).NotTo(Succeed())
		Eventually(func() []string { return flowsOf("would-allow") }).WithTimeout(5 * time.Second).Should(Equal([]string{"other tcp/6379"}))
		for _, e := range out.entries() {
			if e.Verdict == "would-allow" {
				Expect(e.Policies).To(Equal([]string{auditNamespace + "/web-trial"}))
				Expect(e.Pod).To(Equal(auditNamespace + "/web"))
			}
		}
		By("enforcing web-trial: the connection it would allow is allowed")
		setMode("web-trial", selectors.ModeEnforce)
		Eventually(func() error { return other.net.ConnectTCP(dst, probeTimeout) }).WithTimeout(20 * time.Second).Should(Succeed())
	})
})
