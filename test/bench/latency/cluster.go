package main

// The benchmark's cluster. Pods are spread over namespaces lat-00..lat-09 and labelled so that a fixed
// set of background policies select and admit a share of them; two pods are the measured pair:
//
//	lat-00/target  on node-1, role=latency-target, serves TCP 80
//	lat-00/client  on node-2, role=latency-client (gains access=granted in the grant step)
//
// The pair crosses nodes, so a label change of the client reaches the target's agent as a change of a
// remote peer. Pods with a network namespace are created by the lab (it acts as their kubelet). A node
// of the lab's address plan holds at most 254 pods, so beyond realPodsPerNode per node the remaining
// pods are API objects only, placed on agentless nodes virtual-1.. with addresses 198.18.(50+v).p that
// nothing routes: every agent resolves them as peers exactly like real remote pods, but no probe goes
// to them.

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const (
	namespaces = 10
	// realPodsPerNode stays under the address plan's 254 pods per node.
	realPodsPerNode = 250
	// backgroundPolicies select and admit pods other than the measured pair.
	backgroundPolicies = 20
	apps               = 25
	// virtualNodeBase is the n of the first agentless node's addresses 198.18.n.p.
	virtualNodeBase = 50

	pairNamespace = "lat-00"
	targetName    = "target"
	clientName    = "client"
	targetPort    = 80
	policyName    = "latency-deny"
	accessLabel   = "access"
	accessGranted = "granted"
)

func namespaceName(i int) string { return fmt.Sprintf("lat-%02d", i) }

// podLabels are the labels of the i-th filler pod.
func podLabels(i int) map[string]string {
	return map[string]string{"app": fmt.Sprintf("app-%d", i%apps), "tier": fmt.Sprintf("t-%d", i%4)}
}

// clusterSpec is the lab's part of a cluster of total pods: the pair first (so that the lab's
// round-robin puts the target on node-1 and the client on node-2), then real filler pods. It returns
// how many filler pods are left for apiOnlyPods.
func clusterSpec(total, nodes int) (scenario.ClusterSpec, int) {
	real := min(total, nodes*realPodsPerNode)
	var spec scenario.ClusterSpec
	for i := range namespaces {
		spec.Namespaces = append(spec.Namespaces, scenario.Namespace{
			Name:   namespaceName(i),
			Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%3)},
		})
	}
	spec.Namespaces[0].Pods = []scenario.Pod{
		{
			Name:   targetName,
			Labels: map[string]string{"role": "latency-target"},
			Ports:  []scenario.Port{{Name: "http", Port: targetPort, Protocol: scenario.ProtocolTCP}},
		},
		{Name: clientName, Labels: map[string]string{"role": "latency-client"}},
	}
	for i := range real - 2 {
		ns := &spec.Namespaces[i%namespaces]
		ns.Pods = append(ns.Pods, scenario.Pod{Name: fmt.Sprintf("pod-%04d", i), Labels: podLabels(i)})
	}
	return spec, total - real
}

// createAPIOnlyPods creates count Running pods without a network namespace on agentless nodes, as
// their kubelet would report them, with workers writes in flight.
func createAPIOnlyPods(ctx context.Context, c client.Client, first, count, workers int) error {
	perNode := realPodsPerNode
	for v := range (count + perNode - 1) / perNode {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("virtual-%d", v+1),
			Labels: map[string]string{corev1.LabelHostname: fmt.Sprintf("virtual-%d", v+1)},
		}}
		if err := c.Create(ctx, node); client.IgnoreAlreadyExists(err) != nil {
			return fmt.Errorf("creating Node %s: %w", node.Name, err)
		}
	}
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if err := createAPIOnlyPod(ctx, c, first+j, j/perNode, j%perNode+1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for j := range count {
		select {
		case jobs <- j:
		case err = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err != nil {
		return err
	}
	return <-errs
}

func createAPIOnlyPod(ctx context.Context, c client.Client, i, virtualNode, p int) error {
	ip := netip.AddrFrom4([4]byte{198, 18, byte(virtualNodeBase + virtualNode), byte(p)})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%04d", i), Namespace: namespaceName(i % namespaces), Labels: podLabels(i)},
		Spec: corev1.PodSpec{
			NodeName:   fmt.Sprintf("virtual-%d", virtualNode+1),
			Containers: []corev1.Container{{Name: "serve", Image: "lab.invalid/serve"}},
		},
	}
	if err := c.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip.String(), PodIPs: []corev1.PodIP{{IP: ip.String()}}, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
	}
	if err := c.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("writing the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// backgroundPolicy k selects one app in one namespace and admits another app of the cluster plus
// one tier of a team's namespaces, on a port and a port range; every third one also limits egress.
func backgroundPolicy(k int) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(8080)
	rangeStart, rangeEnd := intstr.FromInt32(9000), int32(9100)
	peers := []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (k+1)%apps)}}},
		{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("team-%d", k%3)}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"tier": fmt.Sprintf("t-%d", k%4)}},
		},
	}
	ports := []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}, {Protocol: &tcp, Port: &rangeStart, EndPort: &rangeEnd}}
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bg-%02d", k), Namespace: namespaceName(k % namespaces)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", k%apps)}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peers, Ports: ports}},
		},
	}
	if k%3 == 0 {
		policy.Spec.PolicyTypes = append(policy.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		policy.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: peers}}
	}
	return policy
}

// latencyPolicy isolates the target for ingress and admits pods labelled access=granted on TCP 80:
// created while the client lacks the label, it blocks the pair.
func latencyPolicy() *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(targetPort)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName, Namespace: pairNamespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "latency-target"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{accessLabel: accessGranted}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
			}},
		},
	}
}
