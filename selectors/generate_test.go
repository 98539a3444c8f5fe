package selectors_test

import (
	"fmt"
	"math/rand"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// benchScale sizes a generated cluster. The node under test is node-0.
type benchScale struct {
	pods, namespaces, nodes, policies int
	clusterPolicies                   int
}

// generateCluster builds a deterministic cluster: pod i lives in a random namespace on node
// i%nodes, has address 198.18.0.0+i+1 (and fd18::i+1 for every fourth pod) and labels from small
// alphabets; policies cycle through the usual shapes (default deny, allow from app, from another
// team's frontends, egress DNS and internet, egress by named port, from an external range).
func generateCluster(sc benchScale) *selectors.Snapshot {
	rng := rand.New(rand.NewSource(42))
	s := &selectors.Snapshot{Node: "node-0"}
	for n := range sc.namespaces {
		s.Namespaces = append(s.Namespaces, makeNamespace(fmt.Sprintf("ns-%04d", n),
			"team", fmt.Sprintf("team-%d", n%5), "env", []string{"prod", "dev"}[n%2]))
	}
	base := netip.MustParseAddr("198.18.0.0").As4()
	for i := range sc.pods {
		v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(i+1)
		ips := []netip.Addr{netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})}
		if i%4 == 0 {
			v6 := netip.MustParseAddr("fd18::").As16()
			v6[13], v6[14], v6[15] = byte((i+1)>>16), byte((i+1)>>8), byte(i+1)
			ips = append(ips, netip.AddrFrom16(v6))
		}
		s.Pods = append(s.Pods, selectors.Pod{
			Namespace: fmt.Sprintf("ns-%04d", rng.Intn(sc.namespaces)),
			Name:      fmt.Sprintf("pod-%06d", i),
			Labels: map[string]string{
				"app":  fmt.Sprintf("app-%d", rng.Intn(7)),
				"tier": []string{"fe", "be", "db"}[rng.Intn(3)],
			},
			IPs:   ips,
			Node:  fmt.Sprintf("node-%d", i%sc.nodes),
			Phase: "Running",
			Ports: []selectors.ContainerPort{
				{Name: "http", Number: int32(8080 + i%3)},
				{Name: "metrics", Number: 9090},
				{Name: "dns", Number: 53, Protocol: "UDP"},
			},
		})
	}
	for j := range sc.policies {
		ns := fmt.Sprintf("ns-%04d", rng.Intn(sc.namespaces))
		name := fmt.Sprintf("policy-%05d", j)
		app := fmt.Sprintf("app-%d", rng.Intn(7))
		other := fmt.Sprintf("app-%d", rng.Intn(7))
		var np *networkingv1.NetworkPolicy
		switch j % 6 {
		case 0:
			np = makePolicy(ns, name, selecting())
		case 1:
			np = makePolicy(ns, name, selecting("app", app),
				withIngress(ingressRule(peers(podPeer(sel("app", other))), port(tcp, 8080), portRange(tcp, 9000, 9100))))
		case 2:
			np = makePolicy(ns, name, selecting("app", app),
				withIngress(ingressRule(peers(nsPodPeer(sel("team", fmt.Sprintf("team-%d", rng.Intn(5))), sel("tier", "fe"))), namedPortOf(tcp, "http"))))
		case 3:
			np = makePolicy(ns, name, selecting(), withTypes("Egress"),
				withEgress(
					egressRule(peers(nsPeer(sel("kubernetes.io/metadata.name", "ns-0000"))), port(udp, 53), port(tcp, 53)),
					egressRule(peers(ipBlockPeer("0.0.0.0/0", "198.18.0.0/15", "10.0.0.0/8")), port(tcp, 443))))
		case 4:
			np = makePolicy(ns, name, selecting("tier", "fe"),
				withEgress(egressRule(peers(nsPodPeer(sel("env", "prod"), sel("app", other))), namedPortOf(tcp, "http"), namedPortOf(tcp, "metrics"))))
		case 5:
			np = makePolicy(ns, name, selecting("tier", "db"),
				withIngress(ingressRule(peers(ipBlockPeer(fmt.Sprintf("198.19.%d.0/24", rng.Intn(4)))), port(tcp, 5432))))
		}
		s.Policies = append(s.Policies, np)
	}
	s.ClusterPolicies = generateClusterPolicies(sc)
	return s
}

// generateClusterPolicies builds deterministic ClusterNetworkPolicies in the usual shapes: an
// Admin guardrail around a team's namespaces (deny from dev, pass within the team), an Admin rule
// for prod databases (accept from one app's pods by named port, deny egress to an external range),
// an Admin DNS allowance, and a Baseline isolation of dev namespaces.
func generateClusterPolicies(sc benchScale) []*v1beta1.ClusterNetworkPolicy {
	rng := rand.New(rand.NewSource(43))
	var out []*v1beta1.ClusterNetworkPolicy
	tcpPort := func(n int32) []v1beta1.ClusterNetworkPolicyProtocol {
		return []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: n}}}}
	}
	for j := range sc.clusterPolicies {
		cnp := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cnp-%03d", j)}}
		cnp.Spec.Tier, cnp.Spec.Priority = v1beta1.AdminTier, int32(rng.Intn(100))
		team := sel("team", fmt.Sprintf("team-%d", rng.Intn(5)))
		app := sel("app", fmt.Sprintf("app-%d", rng.Intn(7)))
		switch j % 4 {
		case 0:
			cnp.Spec.Subject.Namespaces = team
			cnp.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
				{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: sel("env", "dev")}}, Protocols: tcpPort(5432)},
				{Action: v1beta1.ClusterNetworkPolicyRuleActionPass, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: team}}},
			}
		case 1:
			cnp.Spec.Subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *sel("env", "prod"), PodSelector: *sel("tier", "db")}
			cnp.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{{
				Action:    v1beta1.ClusterNetworkPolicyRuleActionAccept,
				From:      []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *team, PodSelector: *app}}},
				Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "http"}},
			}}
			cnp.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{
				Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
				To:     []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{v1beta1.CIDR(fmt.Sprintf("198.19.%d.0/24", rng.Intn(4)))}}},
			}}
		case 2:
			cnp.Spec.Subject.Namespaces = sel("env", "prod")
			cnp.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{
				Action:    v1beta1.ClusterNetworkPolicyRuleActionAccept,
				To:        []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: sel("kubernetes.io/metadata.name", "ns-0000")}},
				Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 53}}}},
			}}
		case 3:
			cnp.Spec.Tier = v1beta1.BaselineTier
			cnp.Spec.Subject.Namespaces = sel("env", "dev")
			cnp.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
				{Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: team}}},
				{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}},
			}
		}
		out = append(out, cnp)
	}
	return out
}
