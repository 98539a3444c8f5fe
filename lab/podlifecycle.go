package lab

// Pods that come and go while a cluster is up, as a kubelet starts and removes them, and an address
// handed from a deleted pod to a new one. These methods are safe for concurrent use like the
// scenario.Cluster ones.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// AddPod starts one more pod in an existing namespace of the current cluster, on the named node, as
// a kubelet would: network namespace, servers, Pod object and running status. It returns once the
// pod is Running with its addresses; WaitProgrammed waits for the agents.
func (l *Lab) AddPod(ctx context.Context, namespace string, spec scenario.Pod, nodeName string) error {
	n, err := l.node(nodeName)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addPodLocked(ctx, n, namespace, spec)
}

func (l *Lab) addPodLocked(ctx context.Context, n *node, namespace string, spec scenario.Pod) error {
	ref := namespace + "/" + spec.Name
	if _, ok := l.pods[ref]; ok {
		return fmt.Errorf("pod %s already runs in the lab", ref)
	}
	p, err := l.startPod(ctx, n, namespace, spec)
	if p != nil {
		l.pods[ref] = p
	}
	return err
}

// AddPodReusingIP starts a pod like AddPod on the node of a pod deleted before with DeletePod, and
// makes it receive that pod's addresses (the IPv4 address ip4 and its IPv6 twin). A node hands out
// the addresses of removed pods first come, first served, so older free addresses are taken by
// placeholder namespaces until ip4 comes up, and given back after.
func (l *Lab) AddPodReusingIP(ctx context.Context, namespace string, spec scenario.Pod, nodeName string, ip4 netip.Addr) (err error) {
	n, err := l.node(nodeName)
	if err != nil {
		return err
	}
	ref := namespace + "/" + spec.Name
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.pods[ref]; ok {
		return fmt.Errorf("pod %s already runs in the lab", ref)
	}
	var placeholders []*netlab.Pod
	defer func() {
		for _, p := range placeholders {
			err = errors.Join(err, n.net.RemovePod(p))
		}
	}()
	name := namespace + "." + spec.Name
	for try := range 255 {
		if try > 0 {
			name = fmt.Sprintf("%s.%s.%d", namespace, spec.Name, try)
		}
		netPod, addErr := n.net.AddPod(name)
		if addErr != nil {
			return fmt.Errorf("looking for the free address %v on %s: %w", ip4, nodeName, addErr)
		}
		if netPod.IPv4 != ip4 {
			placeholders = append(placeholders, netPod)
			continue
		}
		p, err := l.runPod(ctx, n, netPod, namespace, spec)
		if p != nil {
			l.pods[ref] = p
		}
		return err
	}
	return fmt.Errorf("the address %v is not free on %s", ip4, nodeName)
}

// DeletePod deletes a pod of the current cluster as a kubelet confirming the deletion would: the Pod
// object goes at once, then its servers and network namespace, whose addresses the node reuses.
func (l *Lab) DeletePod(ctx context.Context, ref string) error {
	ns, name, err := splitRef(ref)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pods[ref]
	if !ok {
		return fmt.Errorf("no pod %s in the lab", ref)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := l.client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting pod %s: %w", ref, err)
	}
	delete(l.pods, ref)
	return l.removePod(p)
}

// WaitProgrammed waits until every node's agent reports its table Programmed for exactly the lab's
// pods on that node.
func (l *Lab) WaitProgrammed(ctx context.Context) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.waitSynced(ctx)
}
