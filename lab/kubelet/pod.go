package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// podWorker owns one pod: one goroutine syncs it, woken by the pod's events and its processes'
// exits, so that two syncs of the same pod never run at once.
type podWorker struct {
	k               *Kubelet
	uid             types.UID
	namespace, name string
	created         time.Time
	logDir          string
	wake            chan struct{}

	mu  sync.Mutex // guards what the API handlers read: everything below
	pod *corev1.Pod
	// gone: the object was deleted from the API.
	gone       bool
	sandbox    Sandbox
	containers []*container
	started    bool
	finished   bool   // a terminal phase was written: nothing runs any more
	failure    string // why the pod cannot run, for its status message
	startTime  metav1.Time
	written    *corev1.PodStatus
}

func newPodWorker(k *Kubelet, pod *corev1.Pod) *podWorker {
	return &podWorker{
		k:         k,
		uid:       pod.UID,
		namespace: pod.Namespace,
		name:      pod.Name,
		created:   time.Now(),
		logDir:    filepath.Join(k.cfg.LogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		wake:      make(chan struct{}, 1),
	}
}

func (w *podWorker) update(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.poke()
}

func (w *podWorker) markGone() {
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	w.poke()
}

// poke asks for a sync; pokes coalesce.
func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) logf(format string, args ...any) {
	w.k.cfg.Logf("%s/%s: "+format, append([]any{w.namespace, w.name}, args...)...)
}

func (w *podWorker) run(ctx context.Context) {
	defer w.k.workers.Done()
	for {
		select {
		case <-ctx.Done():
			w.stopContainers(0)
			w.removeSandbox()
			w.k.forget(w.uid, false)
			return
		case <-w.wake:
		}
		if done, deletedByUs := w.sync(ctx); done {
			w.k.forget(w.uid, deletedByUs)
			return
		}
	}
}

// sync moves the pod one step towards its spec: start it, restart or record exited containers,
// write its status, or stop it when it is deleted. It returns done when the worker has nothing
// left to do, and whether this kubelet deleted the Pod.
func (w *podWorker) sync(ctx context.Context) (done, deletedByUs bool) {
	w.mu.Lock()
	pod, gone := w.pod, w.gone
	w.mu.Unlock()
	switch {
	case gone:
		w.logf("pod is gone: stopping its containers")
		w.stopContainers(0)
		w.removeSandbox()
		return true, false
	case pod.DeletionTimestamp != nil:
		w.logf("pod is deleted: stopping its containers")
		w.stopContainers(gracePeriod(pod))
		w.removeSandbox()
		w.finalDelete(ctx, pod)
		return true, true
	}
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return false, false
	}
	if !w.started {
		w.started = true
		w.mu.Unlock()
		w.start(ctx, pod)
		w.mu.Lock()
	}
	w.reconcileContainers(pod)
	status := w.status(pod)
	w.mu.Unlock()
	if err := w.writeStatus(ctx, status); err != nil {
		w.logf("writing status: %v", err)
		time.AfterFunc(time.Second, w.poke)
		return false, false
	}
	if terminal(status.Phase) {
		w.logf("pod is %s", status.Phase)
		w.removeSandbox()
		w.mu.Lock()
		w.finished = true
		w.mu.Unlock()
	}
	return false, false
}

// start creates the sandbox and starts every container; a pod that cannot run gets its failure
// recorded instead.
func (w *podWorker) start(ctx context.Context, pod *corev1.Pod) {
	if reason := unsupported(pod); reason != "" {
		w.fail(reason)
		return
	}
	w.logf("creating sandbox")
	sb, err := w.k.cfg.Sandboxes.Create(ctx, pod)
	if err != nil {
		w.fail(fmt.Sprintf("creating the pod sandbox: %v", err))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sandbox = sb
	w.startTime = metav1.Now()
	env := podEnv(pod, w.k.cfg.HostIPs, sb.IPs())
	for i := range pod.Spec.Containers {
		c := newContainer(w, &pod.Spec.Containers[i])
		w.containers = append(w.containers, c)
		c.prepare(w.k.cfg.Images, env)
		if c.waiting != nil {
			w.failure = fmt.Sprintf("container %s: %s", c.spec.Name, c.waiting.Message)
		}
	}
	if w.failure != "" {
		return // no container starts when one cannot: the pod fails as a whole
	}
	for _, c := range w.containers {
		c.start(sb.NetnsPath())
	}
}

func (w *podWorker) fail(reason string) {
	w.logf("cannot run: %s", reason)
	w.mu.Lock()
	w.failure = reason
	w.mu.Unlock()
}

// unsupported says which part of the pod spec the lab kubelet cannot honour, or "".
func unsupported(pod *corev1.Pod) string {
	switch {
	case len(pod.Spec.InitContainers) > 0:
		return "init containers are not supported by the lab kubelet"
	case len(pod.Spec.EphemeralContainers) > 0:
		return "ephemeral containers are not supported by the lab kubelet"
	}
	for _, c := range pod.Spec.Containers {
		if len(c.VolumeMounts) > 0 && !onlyServiceAccountMounts(pod, c.VolumeMounts) {
			return fmt.Sprintf("container %s mounts volumes, which the lab kubelet does not provide", c.Name)
		}
	}
	return ""
}

// onlyServiceAccountMounts: the projected service account token that admission adds is ignored
// (no mounts exist), as the lab's programs do not read it.
func onlyServiceAccountMounts(pod *corev1.Pod, mounts []corev1.VolumeMount) bool {
	projected := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if v.Projected != nil {
			projected[v.Name] = true
		}
	}
	for _, m := range mounts {
		if !projected[m.Name] || m.MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" {
			return false
		}
	}
	return true
}

// reconcileContainers records exits and restarts containers as the restart policy says.
func (w *podWorker) reconcileContainers(pod *corev1.Pod) {
	if w.failure != "" || w.sandbox == nil {
		return
	}
	now := time.Now()
	for _, c := range w.containers {
		if c.proc == nil || !c.proc.exited() || !c.restartable(pod.Spec.RestartPolicy) {
			continue
		}
		if c.restartAt.IsZero() {
			c.restartAt = c.proc.finishedAt.Add(restartBackoff(c.restarts))
			time.AfterFunc(time.Until(c.restartAt), w.poke)
			continue
		}
		if now.Before(c.restartAt) {
			continue
		}
		c.restarts++
		c.restartAt = time.Time{}
		c.start(w.sandbox.NetnsPath())
	}
}

// restartBackoff is the wait before restart n+1: 1s doubling to 8s, shorter than the kubelet's
// (10s doubling to 5min) so that a crashing test pod recovers fast.
func restartBackoff(restarts int32) time.Duration {
	return time.Second << min(restarts, 3)
}

// gracePeriod is the time the pod's processes get between SIGTERM and SIGKILL.
func gracePeriod(pod *corev1.Pod) time.Duration {
	seconds := int64(corev1.DefaultTerminationGracePeriodSeconds)
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		seconds = *pod.DeletionGracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		seconds = *pod.Spec.TerminationGracePeriodSeconds
	}
	return min(time.Duration(seconds)*time.Second, MaxGracePeriod)
}

// stopContainers sends SIGTERM to every running process, and SIGKILL to those still running after
// grace.
func (w *podWorker) stopContainers(grace time.Duration) {
	w.mu.Lock()
	var procs []*process
	for _, c := range w.containers {
		c.restartAt = time.Time{}
		if c.proc != nil && !c.proc.exited() {
			procs = append(procs, c.proc)
		}
	}
	w.finished = true // nothing restarts any more
	w.mu.Unlock()
	stopProcesses(procs, grace)
}

func (w *podWorker) removeSandbox() {
	w.mu.Lock()
	sb := w.sandbox
	w.sandbox = nil
	w.mu.Unlock()
	if sb == nil {
		return
	}
	w.logf("removing sandbox")
	if err := sb.Remove(); err != nil {
		w.logf("removing sandbox: %v", err)
	}
}

// finalDelete removes the Pod object once its processes are gone, as the kubelet does: grace
// period 0, on condition that the object is still this pod.
func (w *podWorker) finalDelete(ctx context.Context, pod *corev1.Pod) {
	err := w.k.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.logf("deleting the pod: %v", err)
	}
	if err := os.RemoveAll(w.logDir); err != nil {
		w.logf("removing logs: %v", err)
	}
}

// execTarget is what an exec into a container needs.
type execTarget struct {
	netnsPath string
	image     Image
	imageRef  string
	env       []string
}

var errNotRunning = errors.New("container is not running")

func (w *podWorker) execTarget(container string) (execTarget, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.container(container)
	if c == nil {
		return execTarget{}, fmt.Errorf("pod %s/%s has no container %q", w.namespace, w.name, container)
	}
	if w.sandbox == nil || c.proc == nil || c.proc.exited() {
		return execTarget{}, fmt.Errorf("container %s of pod %s/%s: %w", container, w.namespace, w.name, errNotRunning)
	}
	return execTarget{netnsPath: w.sandbox.NetnsPath(), image: c.image, imageRef: c.spec.Image, env: c.env}, nil
}

func (w *podWorker) container(name string) *container {
	for _, c := range w.containers {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

// netnsPath is the path of the pod's network namespace, "" while it has no sandbox.
func (w *podWorker) netnsPath() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sandbox == nil {
		return ""
	}
	return w.sandbox.NetnsPath()
}
