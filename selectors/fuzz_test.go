package selectors_test

import (
	"fmt"
	"math/rand"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// FuzzResolveAgreesWithAllows builds a small random cluster from the input bytes and checks that
// the Models of every node decide every connection as Allows does.
func FuzzResolveAgreesWithAllows(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("policies with selectors and ipBlocks"))
	f.Add([]byte{5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30})
	f.Add([]byte{255, 254, 3, 2, 9, 7, 1, 0, 4, 4, 4, 4, 200, 100, 50, 25, 12, 6, 3, 1, 99, 98, 97, 96, 95, 94, 93, 92})
	// Plain `go test` runs the seeds: enough random clusters to exercise every shape.
	for _, b := range randomSeeds(7, 300, 256) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := randomSnapshot(&chooser{data: data})
		checkAgainstOracle(t, s)
	})
}

// randomSeeds returns count random inputs of size bytes, the same for the same seed.
func randomSeeds(seed int64, count, size int) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	out := make([][]byte, count)
	for i := range out {
		out[i] = make([]byte, size)
		rng.Read(out[i])
	}
	return out
}

// chooser turns fuzz bytes into choices; past the end every choice is 0.
type chooser struct {
	data []byte
	pos  int
}

func (c *chooser) pick(n int) int {
	if c.pos >= len(c.data) {
		return 0
	}
	c.pos++
	return int(c.data[c.pos-1]) % n
}

func (c *chooser) coin() bool { return c.pick(2) == 1 }

var (
	fuzzNamespaces = []string{"a", "b", "c"}
	fuzzKeys       = []string{"app", "tier"}
	fuzzValues     = []string{"x", "y"}
	fuzzCIDRs      = []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.1.1/32", "0.0.0.0/0", "fd18::/64", "198.18.1.7/16", "fd18::1:0/112", "198.19.0.0/16", "bogus"}
	fuzzPortNames  = []string{"http", "dns"}
)

func randomSnapshot(c *chooser) *selectors.Snapshot {
	s := &selectors.Snapshot{Node: testNode}
	for _, ns := range fuzzNamespaces {
		if c.pick(4) == 0 {
			continue // the namespace object is not known yet
		}
		s.Namespaces = append(s.Namespaces, selectors.Namespace{Name: ns, Labels: randomLabels(c)})
	}
	for i := range 2 + c.pick(5) {
		s.Pods = append(s.Pods, randomPod(c, i))
	}
	for i := range 1 + c.pick(4) {
		s.Policies = append(s.Policies, randomPolicy(c, fmt.Sprintf("np%d", i)))
	}
	return s
}

// randomPod is pod p<i> of a random namespace, with address 198.18.<namespace>.<i+1>.
func randomPod(c *chooser, i int) selectors.Pod {
	ns := c.pick(len(fuzzNamespaces))
	p := makePod(fuzzNamespaces[ns], fmt.Sprintf("p%d", i), withIPs(fmt.Sprintf("198.18.%d.%d", ns+1, i+1)))
	p.Labels = randomLabels(c)
	if c.coin() {
		p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd18::%d:%d", ns+1, i+1)))
	}
	if c.coin() {
		p.Node = "n2"
	}
	switch c.pick(8) {
	case 0:
		p.HostNetwork = true
	case 1:
		p.Phase = corev1.PodSucceeded
	case 2:
		p.IPs = nil
	}
	p.Ports = randomContainerPorts(c)
	return p
}

func randomContainerPorts(c *chooser) []selectors.ContainerPort {
	var ports []selectors.ContainerPort
	for range c.pick(3) {
		ports = append(ports, selectors.ContainerPort{
			Name:     fuzzPortNames[c.pick(2)],
			Number:   []int32{53, 80, 8080}[c.pick(3)],
			Protocol: []corev1.Protocol{"", tcp, udp}[c.pick(3)],
		})
	}
	return ports
}

// randomPolicy is a policy of a random namespace with random selectors, types, peers and ports.
func randomPolicy(c *chooser, name string) *networkingv1.NetworkPolicy {
	np := makePolicy(fuzzNamespaces[c.pick(len(fuzzNamespaces))], name)
	np.Spec.PodSelector = *randomSelector(c)
	switch c.pick(4) {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	for range c.pick(3) {
		np.Spec.Ingress = append(np.Spec.Ingress, ingressRule(randomPeers(c), randomPorts(c)...))
	}
	for range c.pick(3) {
		np.Spec.Egress = append(np.Spec.Egress, egressRule(randomPeers(c), randomPorts(c)...))
	}
	return np
}

func randomLabels(c *chooser) map[string]string {
	m := map[string]string{}
	for _, k := range fuzzKeys {
		if v := c.pick(3); v > 0 {
			m[k] = fuzzValues[v-1]
		}
	}
	return m
}

func randomSelector(c *chooser) *metav1.LabelSelector {
	ls := &metav1.LabelSelector{}
	for range c.pick(3) {
		key := fuzzKeys[c.pick(2)]
		switch c.pick(6) {
		case 0:
			if ls.MatchLabels == nil {
				ls.MatchLabels = map[string]string{}
			}
			ls.MatchLabels[key] = fuzzValues[c.pick(2)]
		case 1:
			ls.MatchExpressions = append(ls.MatchExpressions, expr(key, metav1.LabelSelectorOpIn, fuzzValues[:1+c.pick(2)]...))
		case 2:
			ls.MatchExpressions = append(ls.MatchExpressions, expr(key, metav1.LabelSelectorOpNotIn, fuzzValues[c.pick(2)]))
		case 3:
			ls.MatchExpressions = append(ls.MatchExpressions, expr(key, metav1.LabelSelectorOpExists))
		case 4:
			ls.MatchExpressions = append(ls.MatchExpressions, expr(key, metav1.LabelSelectorOpDoesNotExist))
		case 5:
			ls.MatchExpressions = append(ls.MatchExpressions, expr(key, metav1.LabelSelectorOpIn)) // invalid: no values
		}
	}
	return ls
}

func randomPeers(c *chooser) []networkingv1.NetworkPolicyPeer {
	var ps []networkingv1.NetworkPolicyPeer
	for range c.pick(3) {
		switch c.pick(5) {
		case 0:
			ps = append(ps, podPeer(randomSelector(c)))
		case 1:
			ps = append(ps, nsPeer(randomSelector(c)))
		case 2:
			ps = append(ps, nsPodPeer(randomSelector(c), randomSelector(c)))
		case 3:
			b := ipBlockPeer(fuzzCIDRs[c.pick(len(fuzzCIDRs))])
			for range c.pick(3) {
				b.IPBlock.Except = append(b.IPBlock.Except, fuzzCIDRs[c.pick(len(fuzzCIDRs))])
			}
			ps = append(ps, b)
		case 4:
			ps = append(ps, networkingv1.NetworkPolicyPeer{}) // invalid: empty peer
		}
	}
	return ps
}

func randomPorts(c *chooser) []networkingv1.NetworkPolicyPort {
	var ps []networkingv1.NetworkPolicyPort
	protocols := []corev1.Protocol{tcp, udp, sctp}
	for range c.pick(3) {
		switch c.pick(6) {
		case 0:
			ps = append(ps, port(protocols[c.pick(3)], []int{53, 80, 8080}[c.pick(3)]))
		case 1:
			ps = append(ps, defaultProtocolPort(80))
		case 2:
			ps = append(ps, portRange(protocols[c.pick(3)], []int{1, 53, 80}[c.pick(3)], []int{53, 79, 8080}[c.pick(3)]))
		case 3:
			ps = append(ps, namedPortOf(protocols[c.pick(2)], fuzzPortNames[c.pick(2)]))
		case 4:
			ps = append(ps, everyPortOf(protocols[c.pick(3)]))
		case 5:
			ps = append(ps, withEndPort(namedPortOf(tcp, "http"), 90)) // invalid
		}
	}
	return ps
}
