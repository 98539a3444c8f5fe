package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const (
	// syncTimeout bounds the wait for the agents to see the pods of a new cluster.
	syncTimeout = 60 * time.Second
	// namespaceGoneTimeout bounds the wait for a deleted namespace to disappear.
	namespaceGoneTimeout = 30 * time.Second
)

// protectedNamespaces exist in every cluster and cannot be deleted: a scenario that uses one gets its
// pods and policies removed and its labels reset instead.
var protectedNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// Setup creates c's namespaces and pods, spreading the pods round-robin over the nodes in file order,
// then the file's Services and each pod's own Service, and returns once the agents count the pods,
// every node forwards each pod's Service to it, and the file's Services have their endpoints. Leftovers of an interrupted run in those namespaces
// are removed first.
func (l *Lab) Setup(ctx context.Context, c scenario.ClusterSpec) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.clearClusterPolicies(ctx); err != nil {
		return err
	}
	for _, ns := range c.Namespaces {
		if err := l.clearNamespace(ctx, ns.Name); err != nil {
			return err
		}
	}
	i := 0
	services := &createdServices{own: map[string]*corev1.Service{}}
	for _, ns := range c.Namespaces {
		if err := l.createNamespace(ctx, ns); err != nil {
			return err
		}
		l.namespaces = append(l.namespaces, ns.Name)
		for _, spec := range ns.Pods {
			p, err := l.startPod(ctx, l.nodes[i%len(l.nodes)], ns.Name, spec)
			i++
			if p != nil {
				l.pods[p.ref] = p
			}
			if err != nil {
				return err
			}
		}
		if err := l.createServices(ctx, ns, services); err != nil {
			return err
		}
	}
	if err := l.waitSynced(ctx); err != nil {
		return err
	}
	return l.waitServicesReady(ctx, services)
}

func (l *Lab) createNamespace(ctx context.Context, ns scenario.Namespace) error {
	labels := namespaceLabels(ns.Name, ns.Labels)
	if slices.Contains(protectedNamespaces, ns.Name) {
		return l.setNamespaceLabels(ctx, ns.Name, labels)
	}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: labels}}
	if err := l.client.Create(ctx, obj); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	return nil
}

// namespaceLabels are the file's labels plus the one the API server always sets.
func namespaceLabels(name string, labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[corev1.LabelMetadataName] = name
	return out
}

// Teardown removes the namespaces of the current cluster with their pods and policies, and the
// scenario's ClusterNetworkPolicies; the control
// plane, nodes and agents stay.
func (l *Lab) Teardown(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := []error{l.clearClusterPolicies(ctx)}
	for _, ns := range l.namespaces {
		errs = append(errs, l.clearNamespace(ctx, ns))
	}
	l.namespaces = nil
	return errors.Join(errs...)
}

// clearNamespace deletes the namespace's policies, the lab's Services and pods (objects and network
// namespaces) and then
// the namespace itself. Nothing runs the namespace controller here, so the lab finalizes the namespace
// itself once it is empty.
func (l *Lab) clearNamespace(ctx context.Context, name string) error {
	var errs []error
	if err := l.client.DeleteAllOf(ctx, &networkingv1.NetworkPolicy{}, client.InNamespace(name)); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("deleting the policies of %s: %w", name, err))
	}
	errs = append(errs, l.deleteServices(ctx, name))
	// A pod on a node is deleted gracefully until its kubelet confirms; the lab is that kubelet, and
	// its pods stop at once.
	if err := l.client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(name), client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("deleting the pods of %s: %w", name, err))
	}
	for ref, p := range l.pods {
		if ns, _, _ := splitRef(ref); ns == name {
			errs = append(errs, l.removePod(p))
			delete(l.pods, ref)
		}
	}
	if slices.Contains(protectedNamespaces, name) {
		errs = append(errs, l.setNamespaceLabels(ctx, name, namespaceLabels(name, nil)))
	} else {
		errs = append(errs, l.deleteNamespace(ctx, name))
	}
	return errors.Join(errs...)
}

func (l *Lab) deleteNamespace(ctx context.Context, name string) error {
	var ns corev1.Namespace
	err := l.client.Get(ctx, types.NamespacedName{Name: name}, &ns)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting namespace %s: %w", name, err)
	}
	if ns.DeletionTimestamp == nil {
		if err := l.client.Delete(ctx, &ns); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting namespace %s: %w", name, err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, namespaceGoneTimeout, true, func(ctx context.Context) (bool, error) {
		ns, err := l.clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if len(ns.Spec.Finalizers) > 0 {
			ns.Spec.Finalizers = nil
			if _, err := l.clientset.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return false, fmt.Errorf("finalizing namespace %s: %w", name, err)
			}
		}
		return false, nil
	})
}

func (l *Lab) setNamespaceLabels(ctx context.Context, name string, labels map[string]string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ns corev1.Namespace
		if err := l.client.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
			return err
		}
		ns.Labels = labels
		return l.client.Update(ctx, &ns)
	})
}

// waitSynced waits until every node's agent has programmed its table for exactly the lab's pods on
// that node.
func (l *Lab) waitSynced(ctx context.Context) error {
	want := map[string]int32{}
	for _, p := range l.pods {
		want[p.node.name]++
	}
	for _, n := range l.nodes {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, syncTimeout, true, func(ctx context.Context) (bool, error) {
			var ne policyv1alpha1.NodeEnforcement
			if err := l.client.Get(ctx, types.NamespacedName{Name: n.name}, &ne); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			return ne.Status.LocalPods == want[n.name] &&
				meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed), nil
		})
		if err != nil {
			return fmt.Errorf("waiting for the agent of %s to program %d pods: %w", n.name, want[n.name], err)
		}
	}
	return nil
}

// PodNetns returns the network namespace of a pod ("namespace/name") the lab runs.
func (l *Lab) PodNetns(pod string) (netlab.Netns, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	p, ok := l.pods[pod]
	if !ok || p.net == nil {
		return netlab.Netns{}, fmt.Errorf("no pod %s in the lab", pod)
	}
	return p.net.Netns, nil
}

// PodIP returns the pod's address of family, which the lab must publish.
func (l *Lab) PodIP(pod string, family scenario.Family) (netip.Addr, error) {
	l.mu.RLock()
	p, ok := l.pods[pod]
	l.mu.RUnlock()
	if !ok || p.net == nil {
		return netip.Addr{}, fmt.Errorf("no pod %s in the lab", pod)
	}
	if !slices.Contains(l.Families(), family) {
		return netip.Addr{}, fmt.Errorf("the lab publishes no %s addresses (--ip-family %s)", family, l.opts.IPFamily)
	}
	if family == scenario.IPv6 {
		return p.net.IPv6, nil
	}
	return p.net.IPv4, nil
}

// ApplyPolicies creates each policy, or replaces the existing object of that namespace and name.
func (l *Lab) ApplyPolicies(ctx context.Context, policies []*networkingv1.NetworkPolicy) error {
	for _, policy := range policies {
		if err := applyPolicy(ctx, l.client, policy); err != nil {
			return err
		}
	}
	return nil
}

func applyPolicy(ctx context.Context, c client.Client, policy *networkingv1.NetworkPolicy) error {
	key := client.ObjectKeyFromObject(policy)
	err := c.Create(ctx, policy.DeepCopy())
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("creating NetworkPolicy %s: %w", key, err)
		}
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var existing networkingv1.NetworkPolicy
		if err := c.Get(ctx, key, &existing); err != nil {
			return err
		}
		existing.Labels, existing.Annotations = policy.Labels, policy.Annotations
		existing.Spec = policy.Spec
		return c.Update(ctx, &existing)
	})
	if err != nil {
		return fmt.Errorf("replacing NetworkPolicy %s: %w", key, err)
	}
	return nil
}

// DeletePolicies deletes the named policies; a policy that does not exist is an error.
func (l *Lab) DeletePolicies(ctx context.Context, refs []string) error {
	for _, ref := range refs {
		ns, name, err := splitRef(ref)
		if err != nil {
			return err
		}
		policy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := l.client.Delete(ctx, policy); err != nil {
			return fmt.Errorf("deleting NetworkPolicy %s: %w", ref, err)
		}
	}
	return nil
}

// Relabel replaces the labels of a namespace (keeping kubernetes.io/metadata.name) or a pod (keeping
// scenario.PodServiceLabel).
func (l *Lab) Relabel(ctx context.Context, r scenario.Relabel) error {
	switch r.Kind {
	case scenario.KindNamespace:
		return l.setNamespaceLabels(ctx, r.Name, namespaceLabels(r.Name, r.Labels))
	case scenario.KindPod:
		ns, name, err := splitRef(r.Name)
		if err != nil {
			return err
		}
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var pod corev1.Pod
			if err := l.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
				return err
			}
			// The lab keeps the label of the pod's own Service, as it is no label of the file's.
			pod.Labels = withPodServiceLabel(name, r.Labels)
			return l.client.Update(ctx, &pod)
		})
	}
	return fmt.Errorf("relabelling %s: unknown kind %q", r.Name, r.Kind)
}

// Probe opens a new connection from src's network namespace to dst's address of family.
func (l *Lab) Probe(ctx context.Context, src, dst string, port int, protocol string, family scenario.Family) (bool, error) {
	l.mu.RLock()
	from, ok := l.pods[src]
	l.mu.RUnlock()
	if !ok || from.net == nil {
		return false, fmt.Errorf("no pod %s in the lab", src)
	}
	addr, err := l.PodIP(dst, family)
	if err != nil {
		return false, err
	}
	return Probe(ctx, from.net.Netns, netip.AddrPortFrom(addr, uint16(port)), protocol, ProbeTimeout)
}

// SupportsProtocol reports TCP and UDP as supported. SCTP is not: without SCTP sockets in the kernel
// nothing can be probed, and the lab has no SCTP server or prober either.
func (l *Lab) SupportsProtocol(protocol string) (bool, string) {
	switch protocol {
	case scenario.ProtocolTCP, scenario.ProtocolUDP:
		return true, ""
	case scenario.ProtocolSCTP:
		if err := sctpSocketsAvailable(); err != nil {
			return false, "the kernel has no SCTP sockets: " + err.Error()
		}
		return false, "the lab has no SCTP server or prober yet"
	}
	return false, "unknown protocol " + protocol
}
