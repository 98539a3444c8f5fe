package kubelet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

func metav1Time(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

// status is the pod status this kubelet owns, from its containers' state. Called with w.mu held.
func (w *podWorker) status(pod *corev1.Pod) *corev1.PodStatus {
	s := &corev1.PodStatus{Phase: corev1.PodPending}
	for _, ip := range w.k.cfg.HostIPs {
		s.HostIPs = append(s.HostIPs, corev1.HostIP{IP: ip.String()})
	}
	if len(s.HostIPs) > 0 {
		s.HostIP = s.HostIPs[0].IP
	}
	if w.sandbox != nil {
		for _, ip := range w.sandbox.IPs() {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip.String()})
		}
		if len(s.PodIPs) > 0 {
			s.PodIP = s.PodIPs[0].IP
		}
	}
	if !w.startTime.IsZero() {
		s.StartTime = &w.startTime
	}
	ready, running, succeeded := true, false, true
	for _, spec := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{Name: spec.Name, Image: spec.Image, ImageID: "lab://" + repository(spec.Image)}
		c := w.container(spec.Name)
		if c != nil {
			cs = c.status(pod.Spec.RestartPolicy, cs)
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		}
		switch {
		case cs.State.Running != nil:
			running = true
		case cs.State.Terminated != nil:
			succeeded = succeeded && cs.State.Terminated.ExitCode == 0
		default:
			running = true // waiting to (re)start
		}
		ready = ready && cs.Ready
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	switch {
	case w.failure != "":
		s.Phase, s.Reason, s.Message = corev1.PodFailed, "LabCannotRun", w.failure
		ready = false
	case !w.started || w.sandbox == nil && !w.finished:
		ready = false
	case running:
		s.Phase = corev1.PodRunning
	case succeeded:
		s.Phase = corev1.PodSucceeded
		ready = false
	default:
		s.Phase = corev1.PodFailed
		ready = false
	}
	s.Conditions = conditions(w.sandbox != nil || terminal(s.Phase), ready)
	return s
}

// conditions are the pod conditions this kubelet owns.
func conditions(sandboxReady, ready bool) []corev1.PodCondition {
	status := func(b bool) corev1.ConditionStatus {
		if b {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	var reason string
	if !ready {
		reason = "ContainersNotReady"
	}
	return []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: status(sandboxReady)},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		{Type: corev1.ContainersReady, Status: status(ready), Reason: reason},
		{Type: corev1.PodReady, Status: status(ready), Reason: reason},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	}
}

// status is the container's status. Called with the worker's mutex held.
func (c *container) status(policy corev1.RestartPolicy, cs corev1.ContainerStatus) corev1.ContainerStatus {
	cs.RestartCount = c.restarts
	cs.LastTerminationState.Terminated = c.last
	switch {
	case c.waiting != nil:
		cs.State.Waiting = c.waiting
	case c.proc == nil:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	case !c.proc.exited():
		cs.ContainerID = c.id()
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1Time(c.proc.startedAt)}
		cs.Ready, cs.Started = true, ptrTo(true)
	case c.restartable(policy) && !c.pod.finished:
		cs.ContainerID = c.id()
		cs.LastTerminationState.Terminated = c.proc.terminated(c.id())
		cs.State.Waiting = &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off restarting container %s", c.spec.Name),
		}
		cs.Started = ptrTo(false)
	default:
		cs.ContainerID = c.id()
		cs.State.Terminated = c.proc.terminated(c.id())
		cs.Started = ptrTo(false)
	}
	return cs
}

func ptrTo[T any](v T) *T { return &v }

// writeStatus writes status on the pod, keeping the conditions this kubelet does not own.
func (w *podWorker) writeStatus(ctx context.Context, status *corev1.PodStatus) error {
	if w.written != nil && apiequality.Semantic.DeepEqual(w.written, status) {
		return nil
	}
	pods := w.k.cfg.Client.CoreV1().Pods(w.namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := pods.Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != w.uid {
			return nil // replaced by a new pod of the same name: this one is gone
		}
		next := status.DeepCopy()
		next.QOSClass = cur.Status.QOSClass
		next.NominatedNodeName = cur.Status.NominatedNodeName
		for _, c := range cur.Status.Conditions {
			if !owned(c.Type) {
				next.Conditions = append(next.Conditions, c)
			}
		}
		for i := range next.Conditions {
			keepTransitionTime(&next.Conditions[i], cur.Status.Conditions)
		}
		cur.Status = *next
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil // the informer reports the deletion
	}
	if err != nil {
		return fmt.Errorf("updating the status of %s/%s: %w", w.namespace, w.name, err)
	}
	w.written = status
	return nil
}

func owned(t corev1.PodConditionType) bool {
	switch t {
	case corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled:
		return true
	}
	return false
}

// keepTransitionTime keeps a condition's lastTransitionTime while its status does not change.
func keepTransitionTime(c *corev1.PodCondition, old []corev1.PodCondition) {
	c.LastTransitionTime = metav1Time(time.Now())
	for _, o := range old {
		if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
			c.LastTransitionTime = o.LastTransitionTime
		}
	}
}
