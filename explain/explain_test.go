package explain_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/nftpolicy/nftpolicy/explain"
)

// redisPolicy admits guestbook pods of its namespace to redis on 6379/TCP.
func redisPolicy() *networkingv1.NetworkPolicy {
	return makePolicy("redis-policy", map[string]string{"app": "redis"}, ingressRule(peers(podsPeer("app", "guestbook")), tcp(6379)))
}

// wantDirection is what a test expects of one direction's answer.
type wantDirection struct {
	allowed    bool
	isolatedBy []string
	admittedBy string               // "policy dir[rule] peer N port N", "" when denied
	reasons    []explain.ReasonKind // every rejection's reasons, in order
	text       string               // a reason's text must contain this
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		src, dst string
		port     string
		family   int
		egress   *wantDirection // nil: no egress answer expected (the source is no pod)
		ingress  *wantDirection
		allowed  bool
	}{{
		name:     "allowed",
		policies: []*networkingv1.NetworkPolicy{redisPolicy()},
		src:      "default/guestbook", dst: "default/redis", port: "6379/tcp",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/redis-policy"}, admittedBy: "default/redis-policy ingress[0] peer 0 port 0"},
		allowed: true,
	}, {
		name:     "denied by port",
		policies: []*networkingv1.NetworkPolicy{redisPolicy()},
		src:      "default/guestbook", dst: "default/redis", port: "80",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/redis-policy"}, reasons: []explain.ReasonKind{explain.ReasonPort}, text: "port 0 wants 6379/TCP, got 80"},
	}, {
		name:     "denied by pod selector",
		policies: []*networkingv1.NetworkPolicy{redisPolicy()},
		src:      "default/busybox", dst: "default/redis", port: "6379/TCP",
		egress: &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/redis-policy"}, reasons: []explain.ReasonKind{explain.ReasonPeerPodSelector},
			text: "peer 0 wants pods app=guestbook, default/busybox has app=busybox"},
	}, {
		name:     "denied by pod selector and port at once",
		policies: []*networkingv1.NetworkPolicy{redisPolicy()},
		src:      "default/busybox", dst: "default/redis", port: "80",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/redis-policy"}, reasons: []explain.ReasonKind{explain.ReasonPeerPodSelector, explain.ReasonPort}},
	}, {
		name:     "denied by the policy's own namespace",
		policies: []*networkingv1.NetworkPolicy{redisPolicy()},
		src:      "other/client", dst: "default/redis", port: "6379",
		egress: &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/redis-policy"}, reasons: []explain.ReasonKind{explain.ReasonPeerNamespace},
			text: "other/client is in other"},
	}, {
		name: "denied by namespace selector",
		policies: []*networkingv1.NetworkPolicy{makePolicy("from-team-c", map[string]string{"app": "redis"},
			ingressRule(peers(nsPodsPeer(map[string]string{"team": "c"}, map[string]string{"app": "guestbook"}))))},
		src: "other/client", dst: "default/redis", port: "6379",
		egress: &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/from-team-c"}, reasons: []explain.ReasonKind{explain.ReasonPeerNamespaceSelector},
			text: "peer 0 wants namespaces team=c, namespace other has team=b"},
	}, {
		name: "allowed by namespace selector",
		policies: []*networkingv1.NetworkPolicy{makePolicy("from-team-b", map[string]string{"app": "redis"},
			ingressRule(peers(nsPodsPeer(map[string]string{"team": "b"}, map[string]string{"app": "guestbook"}))))},
		src: "other/client", dst: "10.0.1.20", port: "6379",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/from-team-b"}, admittedBy: "default/from-team-b ingress[0] peer 0 port -1"},
		allowed: true,
	}, {
		name: "except hit",
		policies: []*networkingv1.NetworkPolicy{makePolicy("outside", map[string]string{"app": "busybox"},
			egressRule(peers(podsPeer("app", "dns"), blockPeer("203.0.113.0/24", "203.0.113.0/28")), tcp(443)))},
		src: "default/busybox", dst: "203.0.113.7", port: "443",
		egress: &wantDirection{isolatedBy: []string{"default/outside"}, reasons: []explain.ReasonKind{explain.ReasonPeerNotPod, explain.ReasonIPBlockExcept},
			text: "peer 1 wants ipBlock 203.0.113.0/24, which holds 203.0.113.7, but its except 203.0.113.0/28 removes it"},
	}, {
		name: "egress to an outside address through an ipBlock",
		policies: []*networkingv1.NetworkPolicy{makePolicy("outside", map[string]string{"app": "busybox"},
			egressRule(peers(podsPeer("app", "dns"), blockPeer("203.0.113.0/24", "203.0.113.0/28")), tcp(443)))},
		src: "default/busybox", dst: "203.0.113.100", port: "443",
		egress:  &wantDirection{allowed: true, isolatedBy: []string{"default/outside"}, admittedBy: "default/outside egress[0] peer 1 port 0"},
		allowed: true,
	}, {
		name: "outside the ipBlock",
		policies: []*networkingv1.NetworkPolicy{makePolicy("outside", map[string]string{"app": "busybox"},
			egressRule(peers(blockPeer("203.0.113.0/24")), tcp(443)))},
		src: "default/busybox", dst: "198.51.100.1", port: "443",
		egress: &wantDirection{isolatedBy: []string{"default/outside"}, reasons: []explain.ReasonKind{explain.ReasonIPBlockCIDR}},
	}, {
		name: "ingress from an outside address",
		policies: []*networkingv1.NetworkPolicy{makePolicy("lan", map[string]string{"app": "redis"},
			ingressRule(peers(blockPeer("198.51.100.0/24"))))},
		src: "198.51.100.9", dst: "default/redis", port: "6379",
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/lan"}, admittedBy: "default/lan ingress[0] peer 0 port -1"},
		allowed: true,
	}, {
		name: "a hostNetwork pod is an outside address",
		policies: []*networkingv1.NetworkPolicy{makePolicy("lan", map[string]string{"app": "redis"},
			ingressRule(peers(podsPeer()), tcp(6379)))},
		src: "default/node-agent", dst: "default/redis", port: "6379",
		ingress: &wantDirection{isolatedBy: []string{"default/lan"}, reasons: []explain.ReasonKind{explain.ReasonPeerNotPod}},
	}, {
		name: "named port defined on the destination",
		policies: []*networkingv1.NetworkPolicy{makePolicy("named", map[string]string{"app": "redis"},
			ingressRule(peers(podsPeer("app", "guestbook")), tcpNamed("redis")))},
		src: "default/guestbook", dst: "default/redis", port: "redis",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/named"}, admittedBy: "default/named ingress[0] peer 0 port 0"},
		allowed: true,
	}, {
		name: "named port not defined on the destination",
		policies: []*networkingv1.NetworkPolicy{makePolicy("named", map[string]string{"app": "redis"},
			ingressRule(peers(podsPeer("app", "guestbook")), tcpNamed("http")))},
		src: "default/guestbook", dst: "default/redis", port: "6379",
		egress: &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/named"}, reasons: []explain.ReasonKind{explain.ReasonNamedPort},
			text: `default/redis defines no TCP container port named "http"`},
	}, {
		name: "egress named port resolved on the destination",
		policies: []*networkingv1.NetworkPolicy{makePolicy("named-egress", map[string]string{"app": "busybox"},
			egressRule(nil, tcpNamed("redis")))},
		src: "default/busybox", dst: "default/guestbook", port: "6379",
		egress:  &wantDirection{isolatedBy: []string{"default/named-egress"}, reasons: []explain.ReasonKind{explain.ReasonNamedPort}},
		ingress: &wantDirection{allowed: true},
	}, {
		name: "not isolated",
		src:  "default/busybox", dst: "default/redis", port: "6379",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true},
		allowed: true,
	}, {
		name: "isolated by two policies",
		policies: []*networkingv1.NetworkPolicy{redisPolicy(),
			makePolicy("deny-all", map[string]string{}, denyAll(networkingv1.PolicyTypeIngress)),
			makePolicy("monitoring", map[string]string{"app": "redis"}, ingressRule(peers(podsPeer("app", "prometheus")), tcp(9121)))},
		src: "default/busybox", dst: "default/redis", port: "6379",
		egress: &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/deny-all", "default/monitoring", "default/redis-policy"},
			reasons: []explain.ReasonKind{explain.ReasonPeerPodSelector, explain.ReasonPort, explain.ReasonPeerPodSelector}},
	}, {
		name: "isolated by two policies, one admits",
		policies: []*networkingv1.NetworkPolicy{redisPolicy(),
			makePolicy("deny-all", map[string]string{}, denyAll(networkingv1.PolicyTypeIngress))},
		src: "default/guestbook", dst: "default/redis", port: "6379",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/deny-all", "default/redis-policy"}, admittedBy: "default/redis-policy ingress[0] peer 0 port 0"},
		allowed: true,
	}, {
		name: "UDP is not TCP",
		policies: []*networkingv1.NetworkPolicy{makePolicy("dns", map[string]string{"app": "dns"},
			ingressRule(nil, udp(53)))},
		src: "default/busybox", dst: "default/dns", port: "53/tcp",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/dns"}, reasons: []explain.ReasonKind{explain.ReasonProtocol}, text: "port 0 wants 53/UDP, the connection is TCP"},
	}, {
		name: "UDP allowed",
		policies: []*networkingv1.NetworkPolicy{makePolicy("dns", map[string]string{"app": "dns"},
			ingressRule(nil, udp(53)))},
		src: "default/busybox", dst: "default/dns", port: "dns/udp",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/dns"}, admittedBy: "default/dns ingress[0] peer -1 port 0"},
		allowed: true,
	}, {
		name: "egress denied, ingress allowed",
		policies: []*networkingv1.NetworkPolicy{redisPolicy(),
			makePolicy("no-egress", map[string]string{"app": "guestbook"}, denyAll(networkingv1.PolicyTypeEgress))},
		src: "default/guestbook", dst: "default/redis", port: "6379",
		egress:  &wantDirection{isolatedBy: []string{"default/no-egress"}},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/redis-policy"}, admittedBy: "default/redis-policy ingress[0] peer 0 port 0"},
	}, {
		name: "IPv6 chosen on dual-stack pods",
		policies: []*networkingv1.NetworkPolicy{makePolicy("v4-only", map[string]string{"app": "redis"},
			ingressRule(peers(blockPeer("10.0.0.0/8"))))},
		src: "default/busybox", dst: "default/redis", port: "6379", family: 6,
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{isolatedBy: []string{"default/v4-only"}, reasons: []explain.ReasonKind{explain.ReasonIPBlockCIDR}, text: "does not hold fd00::1:10"},
	}, {
		name: "the family of an address target",
		policies: []*networkingv1.NetworkPolicy{makePolicy("v4-only", map[string]string{"app": "redis"},
			ingressRule(peers(blockPeer("10.0.0.0/8"))))},
		src: "fd00::99", dst: "default/redis", port: "6379",
		ingress: &wantDirection{isolatedBy: []string{"default/v4-only"}, reasons: []explain.ReasonKind{explain.ReasonIPBlockCIDR}, text: "does not hold fd00::99"},
	}, {
		name: "IPv4 by default on dual-stack pods",
		policies: []*networkingv1.NetworkPolicy{makePolicy("v4-only", map[string]string{"app": "redis"},
			ingressRule(peers(blockPeer("10.0.0.0/8"))))},
		src: "default/busybox", dst: "default/redis", port: "6379",
		egress:  &wantDirection{allowed: true},
		ingress: &wantDirection{allowed: true, isolatedBy: []string{"default/v4-only"}, admittedBy: "default/v4-only ingress[0] peer 0 port -1"},
		allowed: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := mustTarget(t, tt.src), mustTarget(t, tt.dst)
			port, err := explain.ParsePortSpec(tt.port)
			if err != nil {
				t.Fatal(err)
			}
			got, err := explain.Explain(cluster(tt.policies...), src, dst, port, tt.family)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			checkDirection(t, "egress", got.Egress, tt.egress)
			checkDirection(t, "ingress", got.Ingress, tt.ingress)
			if got.Allowed != tt.allowed {
				t.Errorf("Allowed = %v, want %v", got.Allowed, tt.allowed)
			}
		})
	}
}

func mustTarget(t *testing.T, s string) explain.Target {
	t.Helper()
	target, err := explain.ParseTarget(s)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

func checkDirection(t *testing.T, dir string, got *explain.DirectionAnswer, want *wantDirection) {
	t.Helper()
	switch {
	case got == nil && want == nil:
		return
	case got == nil || want == nil:
		t.Fatalf("%s answer = %+v, want %+v", dir, got, want)
	}
	if got.Allowed != want.allowed {
		t.Errorf("%s Allowed = %v, want %v", dir, got.Allowed, want.allowed)
	}
	var isolatedBy []string
	for _, p := range got.IsolatedBy {
		isolatedBy = append(isolatedBy, p.String())
	}
	if !slices.Equal(isolatedBy, want.isolatedBy) || got.Isolated != (len(want.isolatedBy) > 0) {
		t.Errorf("%s isolated %v by %v, want by %v", dir, got.Isolated, isolatedBy, want.isolatedBy)
	}
	admittedBy := ""
	if a := got.AdmittedBy; a != nil {
		peer, port := a.Peer, a.Port
		if a.AnyPeer {
			peer = -1
		}
		if a.AllPorts {
			port = -1
		}
		admittedBy = fmt.Sprintf("%s %s[%d] peer %d port %d", a.Policy, a.Direction, a.Rule, peer, port)
	}
	if admittedBy != want.admittedBy {
		t.Errorf("%s AdmittedBy = %q, want %q", dir, admittedBy, want.admittedBy)
	}
	var kinds []explain.ReasonKind
	var texts []string
	for _, rej := range got.Rejections {
		for _, r := range rej.Reasons {
			kinds = append(kinds, r.Kind)
			texts = append(texts, r.Text)
		}
	}
	if !slices.Equal(kinds, want.reasons) {
		t.Errorf("%s reasons = %v, want %v (%q)", dir, kinds, want.reasons, texts)
	}
	if want.text != "" && !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, want.text) }) {
		t.Errorf("%s reasons %q hold no %q", dir, texts, want.text)
	}
}

func TestExplainConnection(t *testing.T) {
	s := cluster(redisPolicy())
	redis, _ := explain.ParsePortSpec("redis/TCP")
	got, err := explain.Explain(s, explain.PodTarget("default", "busybox"), explain.PodTarget("default", "redis"), redis, 6)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Connection
	if c.SrcIP != netip.MustParseAddr("fd00::1:10") || c.DstIP != netip.MustParseAddr("fd00::1:20") {
		t.Errorf("addresses %s -> %s, want the IPv6 ones", c.SrcIP, c.DstIP)
	}
	if c.Port != 6379 || c.PortName != "redis" || c.Protocol != corev1.ProtocolTCP {
		t.Errorf("port %d name %q %s, want 6379 named redis TCP", c.Port, c.PortName, c.Protocol)
	}
	if c.Source.Kind != explain.PodEndpoint || c.Source.Node != "n1" || c.Source.Labels["app"] != "busybox" || len(c.Source.IPs) != 2 {
		t.Errorf("source endpoint %+v", c.Source)
	}
	got, err = explain.Explain(s, explain.PodTarget("default", "busybox"), explain.IPTarget(netip.MustParseAddr("203.0.113.7")), explain.PortSpec{Protocol: corev1.ProtocolTCP, Number: 443}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Connection.Destination; d.Kind != explain.ExternalEndpoint || d.String() != "203.0.113.7" || got.Ingress != nil {
		t.Errorf("destination %+v with ingress answer %+v, want an outside address without one", d, got.Ingress)
	}
}

func TestExplainErrors(t *testing.T) {
	s := cluster()
	s.Pods = append(s.Pods, makePod("other", "twin", withIPs("10.0.2.10")))
	tcp80 := explain.PortSpec{Protocol: corev1.ProtocolTCP, Number: 80}
	busybox := explain.PodTarget("default", "busybox")
	tests := []struct {
		name     string
		src, dst explain.Target
		port     explain.PortSpec
		family   int
		want     string
	}{
		{"unknown pod", busybox, explain.PodTarget("default", "nope"), tcp80, 0, "pod default/nope not found"},
		{"ambiguous address", busybox, explain.IPTarget(netip.MustParseAddr("10.0.2.10")), tcp80, 0, "held by several pods"},
		{"terminated pod", busybox, explain.PodTarget("default", "done"), tcp80, 0, "has terminated"},
		{"no shared family", busybox, explain.PodTarget("default", "guestbook"), tcp80, 6, "share no address of IPv6"},
		{"address families differ", explain.IPTarget(netip.MustParseAddr("fd00::99")), explain.PodTarget("default", "guestbook"), tcp80, 0, "share no address of IPv6"},
		{"address family not chosen", explain.IPTarget(netip.MustParseAddr("fd00::99")), explain.PodTarget("default", "redis"), tcp80, 4, "share no address of IPv4"},
		{"bad family", busybox, explain.PodTarget("default", "redis"), tcp80, 5, "family 5"},
		{"undefined port name", busybox, explain.PodTarget("default", "redis"), explain.PortSpec{Protocol: corev1.ProtocolUDP, Name: "redis"}, 0, `defines no UDP container port named "redis"`},
		{"port name of an address", busybox, explain.IPTarget(netip.MustParseAddr("203.0.113.7")), explain.PortSpec{Protocol: corev1.ProtocolTCP, Name: "http"}, 0, "only a destination pod has named ports"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := explain.Explain(s, tt.src, tt.dst, tt.port, tt.family)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"", "default", "a/b/c", "/x"} {
		if _, err := explain.ParseTarget(s); err == nil {
			t.Errorf("ParseTarget(%q) gave no error", s)
		}
	}
	for _, s := range []string{"0", "70000", "80/icmp", "", "a b/tcp"} {
		if _, err := explain.ParsePortSpec(s); err == nil {
			t.Errorf("ParsePortSpec(%q) gave no error", s)
		}
	}
	if p, err := explain.ParsePortSpec("53/udp"); err != nil || p != (explain.PortSpec{Protocol: corev1.ProtocolUDP, Number: 53}) {
		t.Errorf("ParsePortSpec(53/udp) = %+v, %v", p, err)
	}
	if tg, err := explain.ParseTarget("::ffff:10.0.0.1"); err != nil || tg.IP != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("ParseTarget of a mapped address = %+v, %v", tg, err)
	}
}
