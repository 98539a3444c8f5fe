package oracle_test

// IP plan: x/a 198.18.1.1, x/b 198.18.1.2, y/a 198.18.2.1, y/b 198.18.2.2 (port "http" TCP 8080),
// x/h 198.18.1.9 hostNetwork; 198.19.0.1 is outside the cluster. Namespaces are labelled ns: <name>.

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
)

var addrs = map[string]string{"x/a": "198.18.1.1", "x/b": "198.18.1.2", "y/a": "198.18.2.1", "y/b": "198.18.2.2", "x/h": "198.18.1.9", "out": "198.19.0.1"}

func world(t *testing.T, docs ...string) *selectors.Snapshot {
	t.Helper()
	s := &selectors.Snapshot{Namespaces: []selectors.Namespace{{Name: "x", Labels: map[string]string{"ns": "x"}}, {Name: "y", Labels: map[string]string{"ns": "y"}}}}
	for _, key := range []string{"x/a", "x/b", "y/a", "y/b", "x/h"} {
		ns, name, _ := strings.Cut(key, "/")
		p := selectors.Pod{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}, IPs: []netip.Addr{netip.MustParseAddr(addrs[key])}, Phase: corev1.PodRunning}
		if key == "y/b" {
			p.Ports = []selectors.ContainerPort{{Name: "http", Number: 8080, Protocol: corev1.ProtocolTCP}}
		}
		p.HostNetwork = name == "h"
		s.Pods = append(s.Pods, p)
	}
	for _, doc := range docs {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &kind); err != nil {
			t.Fatal(err)
		}
		switch kind.Kind {
		case "NetworkPolicy":
			np := &networkingv1.NetworkPolicy{}
			if err := yaml.UnmarshalStrict([]byte(doc), np); err != nil {
				t.Fatal(err)
			}
			s.Policies = append(s.Policies, np)
		default:
			cnp := &v1beta1.ClusterNetworkPolicy{}
			if err := yaml.UnmarshalStrict([]byte(doc), cnp); err != nil {
				t.Fatal(err)
			}
			s.ClusterPolicies = append(s.ClusterPolicies, cnp)
		}
	}
	return s
}

// cnp writes a ClusterNetworkPolicy; rules is the YAML of its ingress and egress.
func cnp(name, tier string, priority int, subject, rules string) string {
	return "kind: ClusterNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n  tier: " + tier + "\n  priority: " +
		itoa(priority) + "\n  subject: " + subject + "\n" + indent(rules)
}

func itoa(n int) string { return strconv.Itoa(n) }

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

const (
	denyIngressX  = "kind: NetworkPolicy\nmetadata: {namespace: x, name: deny}\nspec: {podSelector: {}}"
	allowIngressX = "kind: NetworkPolicy\nmetadata: {namespace: x, name: allow}\nspec: {podSelector: {}, ingress: [{}]}"
	toX           = "{namespaces: {matchLabels: {ns: x}}}"
	fromAll       = "[{namespaces: {}}]"
)

type probe struct {
	src, dst string
	protocol corev1.Protocol
	port     uint16
	want     bool
}

func tcp(src, dst string, port uint16, want bool) probe {
	return probe{src, dst, corev1.ProtocolTCP, port, want}
}

func check(t *testing.T, s *selectors.Snapshot, probes ...probe) {
	t.Helper()
	for _, p := range probes {
		c := oracle.Connection{Src: netip.MustParseAddr(addrs[p.src]), Dst: netip.MustParseAddr(addrs[p.dst]), Protocol: p.protocol, Port: p.port}
		if got := oracle.Allows(s, c); got != p.want {
			t.Errorf("%s -> %s %s/%d: allowed %v, want %v", p.src, p.dst, p.protocol, p.port, got, p.want)
		}
	}
}

func TestTierOrder(t *testing.T) {
	ingress := func(action string) string { return "ingress: [{action: " + action + ", from: " + fromAll + "}]" }
	t.Run("admin deny beats an allowing NetworkPolicy", func(t *testing.T) {
		check(t, world(t, allowIngressX, cnp("d", "Admin", 1, toX, ingress("Deny"))), tcp("y/a", "x/a", 80, false))
	})
	t.Run("admin accept beats an isolating NetworkPolicy", func(t *testing.T) {
		check(t, world(t, denyIngressX, cnp("a", "Admin", 1, toX, ingress("Accept"))), tcp("y/a", "x/a", 80, true))
	})
	t.Run("admin pass hands over to NetworkPolicy", func(t *testing.T) {
		s := world(t, denyIngressX, cnp("p", "Admin", 1, toX, ingress("Pass")), cnp("d", "Admin", 2, toX, ingress("Accept")))
		check(t, s, tcp("y/a", "x/a", 80, false))
	})
	t.Run("admin pass without NetworkPolicy hands over to baseline", func(t *testing.T) {
		s := world(t, cnp("p", "Admin", 1, toX, ingress("Pass")), cnp("b", "Baseline", 1, toX, ingress("Deny")))
		check(t, s, tcp("y/a", "x/a", 80, false), tcp("x/a", "y/a", 80, true))
	})
	t.Run("NetworkPolicy overrides baseline deny", func(t *testing.T) {
		check(t, world(t, allowIngressX, cnp("b", "Baseline", 1, toX, ingress("Deny"))), tcp("y/a", "x/a", 80, true))
	})
	t.Run("NetworkPolicy isolation overrides baseline accept", func(t *testing.T) {
		check(t, world(t, denyIngressX, cnp("b", "Baseline", 1, toX, ingress("Accept"))), tcp("y/a", "x/a", 80, false))
	})
	t.Run("baseline pass falls through to allowed", func(t *testing.T) {
		s := world(t, cnp("p", "Baseline", 1, toX, ingress("Pass")), cnp("d", "Baseline", 2, toX, ingress("Deny")))
		check(t, s, tcp("y/a", "x/a", 80, true))
	})
	t.Run("egress accept leaves the destination's ingress deny", func(t *testing.T) {
		s := world(t, cnp("e", "Admin", 1, "{namespaces: {matchLabels: {ns: \"y\"}}}", "egress: [{action: Accept, to: "+fromAll+"}]"),
			cnp("d", "Admin", 2, toX, ingress("Deny")))
		check(t, s, tcp("y/a", "x/a", 80, false), tcp("x/a", "y/a", 80, true))
	})
}

func TestPriorityAndRuleOrder(t *testing.T) {
	deny := "ingress: [{action: Deny, from: " + fromAll + "}]"
	accept := "ingress: [{action: Accept, from: " + fromAll + "}]"
	check(t, world(t, cnp("d", "Admin", 2, toX, deny), cnp("a", "Admin", 1, toX, accept)), tcp("y/a", "x/a", 80, true))
	check(t, world(t, cnp("d", "Admin", 1, toX, deny), cnp("a", "Admin", 2, toX, accept)), tcp("y/a", "x/a", 80, false))
	// Equal priority: by name.
	check(t, world(t, cnp("b-deny", "Admin", 5, toX, deny), cnp("a-accept", "Admin", 5, toX, accept)), tcp("y/a", "x/a", 80, true))
	// First match within a policy, and the same rules swapped.
	both := "ingress:\n- {action: %s, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}}]}\n- {action: %s, from: " + fromAll + "}"
	first := strings.Replace(strings.Replace(both, "%s", "Accept", 1), "%s", "Deny", 1)
	swapped := strings.Replace(strings.Replace(both, "%s", "Deny", 1), "%s", "Accept", 1)
	check(t, world(t, cnp("r", "Admin", 1, toX, first)), tcp("y/a", "x/a", 80, true), tcp("y/b", "x/a", 80, false))
	check(t, world(t, cnp("r", "Admin", 1, toX, swapped)), tcp("y/a", "x/a", 80, false), tcp("y/b", "x/a", 80, true))
}

func TestPeersAndPorts(t *testing.T) {
	subjectY := "{pods: {namespaceSelector: {matchLabels: {ns: \"y\"}}, podSelector: {matchLabels: {pod: a}}}}"
	// Networks match pod addresses too.
	s := world(t, cnp("n", "Admin", 1, subjectY, "egress: [{action: Deny, to: [{networks: [198.18.1.0/24]}]}]"))
	check(t, s, tcp("y/a", "x/a", 80, false), tcp("y/a", "y/b", 80, true), tcp("y/b", "x/a", 80, true), tcp("y/a", "out", 80, true))
	// Port ranges are inclusive; other protocols are not matched.
	s = world(t, cnp("r", "Admin", 1, subjectY, "egress: [{action: Deny, to: "+fromAll+", protocols: [{tcp: {destinationPort: {range: {start: 80, end: 81}}}}]}]"))
	check(t, s, tcp("y/a", "x/a", 80, false), tcp("y/a", "x/a", 81, false), tcp("y/a", "x/a", 82, true),
		probe{"y/a", "x/a", corev1.ProtocolUDP, 80, true})
	// A named port is the destination pod's.
	s = world(t, cnp("np", "Baseline", 1, "{namespaces: {}}", "ingress: [{action: Deny, from: "+fromAll+", protocols: [{destinationNamedPort: http}]}]"))
	check(t, s, tcp("x/a", "y/b", 8080, false), tcp("x/a", "y/b", 80, true), tcp("x/b", "x/a", 8080, true))
	// hostNetwork pods are neither subjects nor peers.
	s = world(t, cnp("h", "Admin", 1, "{namespaces: {}}", "egress: [{action: Deny, to: "+fromAll+"}]"))
	check(t, s, tcp("x/h", "x/a", 80, true), tcp("x/a", "x/h", 80, true), tcp("x/a", "x/b", 80, false))
}

func TestFailClosed(t *testing.T) {
	// An Accept rule with an unreadable peer matches nothing: the next rule decides.
	s := world(t, cnp("f", "Admin", 1, toX, "ingress: [{action: Accept, from: [{}]}, {action: Deny, from: "+fromAll+"}]"))
	check(t, s, tcp("y/a", "x/a", 80, false))
	// A Deny or Pass rule with one is a deny of everything, other peers and ports included.
	for _, action := range []string{"Deny", "Pass"} {
		s = world(t, allowIngressX, cnp("f", "Admin", 1, toX,
			"ingress: [{action: "+action+", from: [{}, {pods: {namespaceSelector: {}, podSelector: {matchLabels: {pod: none}}}}], protocols: [{tcp: {destinationPort: {number: 9}}}]}]"))
		check(t, s, tcp("y/a", "x/a", 80, false), probe{"y/a", "x/a", corev1.ProtocolUDP, 81, false}, tcp("x/a", "y/a", 80, true))
	}
	// Unsupported peers fail closed the same way.
	s = world(t, cnp("dn", "Admin", 1, "{namespaces: {}}", "egress: [{action: Pass, to: [{domainNames: [example.com]}]}]"))
	check(t, s, tcp("x/a", "y/a", 80, false))
}
