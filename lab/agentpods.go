package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Labels and port name of the agent's pods, as config/manager's DaemonSet sets them: clients such as
// `kubectl nftpolicy explain` find a node's agent by them.
var agentPodLabels = map[string]string{"app.kubernetes.io/name": "nftpolicy", "app.kubernetes.io/component": "agent"}

const agentMetricsPort = "https-metrics"

// registerAgentPod creates the Pod object of a node's agent, as the DaemonSet would have it: a
// hostNetwork pod bound to the node, running and ready, whose metrics port is the agent's HTTPS port.
// The lab runs the agent itself (NetnsAnnotation), in the lab's own network namespace, so the node's
// kubelet port-forwards to it there. An object left by an earlier agent of the node is replaced:
// its port may differ, and a pod's ports cannot change.
func (l *Lab) registerAgentPod(ctx context.Context, n *node, metricsAddr string) error {
	_, portText, err := net.SplitHostPort(metricsAddr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	pods := l.clientset.CoreV1().Pods(l.identity.Namespace)
	name := "agent-" + n.name
	err = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replacing the agent pod of %s: %w", n.name, err)
	}
	if err == nil {
		if err := waitPodDeleted(ctx, l, name); err != nil {
			return err
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: l.identity.Namespace, Labels: agentPodLabels,
			Annotations: map[string]string{NetnsAnnotation: fmt.Sprintf("/proc/%d/ns/net", os.Getpid())},
		},
		Spec: corev1.PodSpec{
			NodeName:           n.name,
			HostNetwork:        true,
			ServiceAccountName: l.identity.ServiceAccount,
			Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "agent", Image: "nftpolicy:lab",
				Ports: []corev1.ContainerPort{{Name: agentMetricsPort, ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}},
			}},
		},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the agent pod of %s: %w", n.name, err)
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "agent", Image: "nftpolicy:lab", Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}},
	}
	for _, ip := range l.nodeIPs(n) {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip.String()})
		created.Status.HostIPs = append(created.Status.HostIPs, corev1.HostIP{IP: ip.String()})
	}
	if len(created.Status.PodIPs) > 0 {
		created.Status.PodIP, created.Status.HostIP = created.Status.PodIPs[0].IP, created.Status.HostIPs[0].IP
	}
	if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("reporting the agent pod of %s running: %w", n.name, err)
	}
	return nil
}

// waitPodDeleted waits until the agent namespace's pod name is gone.
func waitPodDeleted(ctx context.Context, l *Lab, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := l.clientset.CoreV1().Pods(l.identity.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the old agent pod %s to go: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
