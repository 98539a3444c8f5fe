package kernel

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// ClusterNetworkPolicy tiers on the kernel: node 1 runs apps/web (serving TCP 80 and 8080) and
// clients/x, node 2 clients/y. An Admin policy denies TCP 8080 to apps from everyone, a Baseline
// policy denies y to apps. A denied connection must time out, never be refused: Deny drops.
func TestClusterPolicyTrafficOnTheKernel(t *testing.T) {
	lab := netlab.NewForTest(t)
	node1, node2 := mustNode(t, lab), mustNode(t, lab)
	if err := lab.Connect(node1, node2); err != nil {
		t.Fatal(err)
	}
	web, x, y := mustPod(t, node1, "web"), mustPod(t, node1, "x"), mustPod(t, node2, "y")
	for _, port := range []uint16{80, 8080} {
		srv, err := web.Serve(port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
	}
	pod := func(ns, label string, p *netlab.Pod) selectors.Pod {
		return selectors.Pod{Namespace: ns, Name: p.Name, Labels: map[string]string{"pod": label}, IPs: []netip.Addr{p.IPv4, p.IPv6},
			Node: p.Node.Name, Phase: corev1.PodRunning}
	}
	apps := metav1.LabelSelector{MatchLabels: map[string]string{"ns": "apps"}}
	port8080 := []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: 8080}}}}
	snapshot := &selectors.Snapshot{
		Namespaces: []selectors.Namespace{{Name: "apps", Labels: map[string]string{"ns": "apps"}}, {Name: "clients", Labels: map[string]string{"ns": "clients"}}},
		Pods:       []selectors.Pod{pod("apps", "web", web), pod("clients", "x", x), pod("clients", "y", y)},
		ClusterPolicies: []*v1beta1.ClusterNetworkPolicy{
			{ObjectMeta: metav1.ObjectMeta{Name: "no-8080"}, Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Priority: 1,
				Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &apps},
				Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
					From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}, Protocols: port8080}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "not-y"}, Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.BaselineTier, Priority: 1,
				Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &apps},
				Ingress: []v1beta1.ClusterNetworkPolicyIngressRule{{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
					From: []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{
						NamespaceSelector: metav1.LabelSelector{}, PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "y"}}}}}}}}},
		},
	}
	for _, node := range []*netlab.Node{node1, node2} {
		snap := *snapshot
		snap.Node = node.Name
		model := selectors.Resolve(&snap)
		b, err := NewNetlinkBackend(node.Path)
		if err != nil {
			t.Fatal(err)
		}
		in := nft.CompileInput{Table: kernelTable, Model: model, Interfaces: resolveInterfaces(t, node, model)}
		if _, err := nft.NewApplier(b).Apply(nft.Compile(in), nft.FullChanges()); err != nil {
			t.Fatalf("programming %s: %v", node.Name, err)
		}
		_ = b.Close()
	}
	for _, f := range []struct {
		name string
		from *netlab.Pod
		to   netip.Addr
		port uint16
		want bool
	}{
		{"no tier decides: allowed", x, web.IPv4, 80, true},
		{"no tier decides, IPv6", x, web.IPv6, 80, true},
		{"Admin deny", x, web.IPv4, 8080, false},
		{"Admin deny, IPv6", x, web.IPv6, 8080, false},
		{"Baseline deny from the other node", y, web.IPv4, 80, false},
	} {
		timeout := 3 * time.Second
		if !f.want {
			timeout = 400 * time.Millisecond
		}
		err := f.from.ConnectTCP(netip.AddrPortFrom(f.to, f.port), timeout)
		switch {
		case f.want && err != nil:
			t.Errorf("%s: %v", f.name, err)
		case !f.want && err == nil:
			t.Errorf("%s: connected, want a drop", f.name)
		case !f.want && !isTimeout(err):
			t.Errorf("%s: %v, want a timeout (Deny drops, it never rejects)", f.name, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
