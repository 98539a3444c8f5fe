package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// NodeNames lists the lab's nodes in order.
func (l *Lab) NodeNames() []string {
	names := make([]string, len(l.nodes))
	for i, n := range l.nodes {
		names[i] = n.name
	}
	return names
}

// NodeNetns is the path of the node's network namespace, where its agent programs its table.
func (l *Lab) NodeNetns(nodeName string) (string, error) {
	n, err := l.node(nodeName)
	if err != nil {
		return "", err
	}
	return n.net.Path, nil
}

// NodeOf names the node a pod ("namespace/name") runs on.
func (l *Lab) NodeOf(pod string) (string, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	p, ok := l.pods[pod]
	if !ok {
		return "", fmt.Errorf("no pod %s in the lab", pod)
	}
	return p.node.name, nil
}

func (l *Lab) node(name string) (*node, error) {
	for _, n := range l.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %s in the lab", name)
}

// NodeIP is the node's own address of the lab's primary family, its Node's first InternalIP: other
// nodes and external clients reach it, and kube-proxy serves NodePorts on it.
func (l *Lab) NodeIP(nodeName string) (netip.Addr, error) {
	n, err := l.node(nodeName)
	if err != nil {
		return netip.Addr{}, err
	}
	if l.opts.IPFamily == FamilyIPv6 {
		return n.net.IPv6, nil
	}
	return n.net.IPv4, nil
}

// nodeCapacity is what each Node reports it can hold: nodes share one machine, so the figures only
// have to let kube-scheduler place every pod of a test.
var nodeCapacity = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("8"),
	corev1.ResourceMemory: resource.MustParse("16Gi"),
	corev1.ResourcePods:   resource.MustParse("250"),
}

// createNode creates n's Node with the status a kubelet reports: Ready, its addresses, capacity and
// the port of its kubelet.
func (l *Lab) createNode(ctx context.Context, n *node) error {
	obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   n.name,
		Labels: map[string]string{corev1.LabelHostname: n.name, corev1.LabelOSStable: "linux"},
	}}
	if err := l.client.Create(ctx, obj); err != nil {
		return fmt.Errorf("creating Node %s: %w", n.name, err)
	}
	now := metav1.Now()
	obj.Status = corev1.NodeStatus{
		Addresses: append(l.nodeAddresses(n),
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.name},
			corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: kubeletAddress}),
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.kubelet.Port())}},
		Capacity:        nodeCapacity,
		Allocatable:     nodeCapacity,
		Phase:           corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "the lab runs this node", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
	}
	if err := l.client.Status().Update(ctx, obj); err != nil {
		return fmt.Errorf("writing the status of Node %s: %w", n.name, err)
	}
	// The API server taints a new Node not-ready until the node lifecycle controller sees it Ready;
	// the lab runs no such controller, and its nodes are Ready from the start.
	obj.Spec.Taints = slices.DeleteFunc(obj.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
	if err := l.client.Update(ctx, obj); err != nil {
		return fmt.Errorf("removing the not-ready taint of Node %s: %w", n.name, err)
	}
	return nil
}

// nodeAddresses are the node's InternalIPs, one per family the lab publishes, primary first.
func (l *Lab) nodeAddresses(n *node) []corev1.NodeAddress {
	var out []corev1.NodeAddress
	for _, ip := range l.nodeIPs(n) {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	return out
}

// nodeIPs are the node's own addresses, one per family the lab publishes, primary first.
func (l *Lab) nodeIPs(n *node) []netip.Addr {
	var out []netip.Addr
	for _, p := range l.byFamily(netip.PrefixFrom(n.net.IPv4, 32), netip.PrefixFrom(n.net.IPv6, 128)) {
		out = append(out, p.Addr())
	}
	return out
}

// ExternalClient is the lab's namespace standing for a machine outside the cluster: it reaches every
// node's own address (NodeIP), over a link of its own to each node, and no pod directly, so that it
// reaches a pod only through a NodePort.
func (l *Lab) ExternalClient() *netlab.External { return l.external }
