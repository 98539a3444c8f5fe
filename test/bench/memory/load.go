package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// LoadFigures say how long loading the cluster into the API server took.
type LoadFigures struct {
	Namespaces    int     `json:"namespaces"`
	Pods          int     `json:"pods"`
	Policies      int     `json:"policies"`
	Workers       int     `json:"workers"`
	Seconds       float64 `json:"seconds"`
	PodSeconds    float64 `json:"podSeconds"`
	PodsPerSecond float64 `json:"podsPerSecond"` // a pod is two writes: create, then status
	// Retries counts writes repeated after a transient error (timeouts, throttling, resets).
	Retries int64 `json:"retries"`
}

// newClientset talks protobuf and is not rate limited on the client side: loading is bound by the
// API server and etcd.
func newClientset(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	c.QPS, c.Burst = -1, 0
	c.Timeout = 2 * time.Minute
	return kubernetes.NewForConfig(c)
}

// writeBackoff spaces the attempts of one write that met a transient error: about a minute in all,
// enough for a busy API server or etcd on a shared machine to catch up.
var writeBackoff = wait.Backoff{Steps: 8, Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.2, Cap: 15 * time.Second}

// transient says whether a failed write is worth repeating: the API server or etcd were too busy
// (timeouts, throttling, "etcdserver: request timed out" as an internal error) or the connection
// dropped. Anything else (invalid objects, missing namespaces) fails the load at once.
func transient(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) ||
		utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err) || utilnet.IsProbableEOF(err) ||
		errors.Is(err, context.DeadlineExceeded)
}

// loader writes the generated cluster with a pool of workers and counts repeated writes.
type loader struct {
	cs      *kubernetes.Clientset
	workers int
	retries atomic.Int64
}

// write runs one write, repeating it while it fails transiently.
func (l *loader) write(ctx context.Context, do func() error) error {
	first := true
	return retry.OnError(writeBackoff, func(err error) bool { return ctx.Err() == nil && transient(err) }, func() error {
		if !first {
			l.retries.Add(1)
		}
		first = false
		return do()
	})
}

// load creates the node under test, the namespaces, the pods (with their addresses, through the status
// subresource) and the policies of the generated cluster, with workers concurrent writers.
func load(ctx context.Context, cs *kubernetes.Clientset, c *generator.Cluster, workers int, logf func(string, ...any)) (LoadFigures, error) {
	start := time.Now()
	l := &loader{cs: cs, workers: workers}
	snap := c.Snapshot
	fig := LoadFigures{Namespaces: len(snap.Namespaces), Pods: len(snap.Pods), Policies: len(snap.Policies), Workers: workers}
	defer func() { fig.Retries = l.retries.Load() }()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: generator.Node, Labels: map[string]string{corev1.LabelHostname: generator.Node}}}
	if err := l.write(ctx, func() error { return ignoreExists(cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})) }); err != nil {
		return fig, fmt.Errorf("creating node %s: %w", generator.Node, err)
	}
	err := inParallel(ctx, len(snap.Namespaces), workers, func(ctx context.Context, i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: snap.Namespaces[i].Name, Labels: snap.Namespaces[i].Labels}}
		return l.write(ctx, func() error { return ignoreExists(cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})) })
	})
	if err != nil {
		return fig, fmt.Errorf("creating namespaces: %w", err)
	}
	var done atomic.Int64
	stopProgress := progress(logf, "pods", &done, len(snap.Pods), &l.retries)
	err = inParallel(ctx, len(snap.Pods), workers, func(ctx context.Context, i int) error {
		defer done.Add(1)
		return l.createPod(ctx, &snap.Pods[i])
	})
	stopProgress()
	if err != nil {
		return fig, fmt.Errorf("creating pods: %w", err)
	}
	fig.PodSeconds = time.Since(start).Seconds()
	err = inParallel(ctx, len(snap.Policies), workers, func(ctx context.Context, i int) error {
		np := snap.Policies[i].DeepCopy()
		return l.write(ctx, func() error {
			return ignoreExists(cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{}))
		})
	})
	if err != nil {
		return fig, fmt.Errorf("creating network policies: %w", err)
	}
	fig.Seconds = time.Since(start).Seconds()
	fig.PodsPerSecond = float64(len(snap.Pods)) / fig.PodSeconds
	return fig, nil
}

// ignoreExists treats AlreadyExists as success: a create repeated after a lost response finds the
// object the first attempt made.
func ignoreExists[T any](_ T, err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// createPod creates a running pod as a kubelet would leave it: spec first, then the status with its
// addresses. The API server ignores the status of a pod it creates, so a pod takes two writes.
func (l *loader) createPod(ctx context.Context, p *selectors.Pod) error {
	pods := l.cs.CoreV1().Pods(p.Namespace)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec: corev1.PodSpec{
			NodeName:   p.Node,
			Containers: []corev1.Container{{Name: "app", Image: "bench.invalid/app:1", Ports: containerPorts(p.Ports)}},
		},
	}
	var created *corev1.Pod
	err := l.write(ctx, func() error {
		var err error
		created, err = pods.Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			created, err = pods.Get(ctx, p.Name, metav1.GetOptions{})
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	setRunning(created, p)
	err = l.write(ctx, func() error {
		_, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			// A repeated write whose first attempt went through: start from what the server holds.
			var fresh *corev1.Pod
			if fresh, err = pods.Get(ctx, p.Name, metav1.GetOptions{}); err == nil {
				created = fresh
				setRunning(created, p)
				_, err = pods.UpdateStatus(ctx, created, metav1.UpdateOptions{})
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("writing the status of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// setRunning gives pod the status of the generated pod p: its phase, addresses and ready conditions.
func setRunning(pod *corev1.Pod, p *selectors.Pod) {
	now := metav1.Now()
	// The server keeps the managed fields of an update that sends none; sending them back is waste.
	pod.ManagedFields = nil
	pod.Status = corev1.PodStatus{
		Phase:     p.Phase,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	for _, ip := range p.IPs {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(p.IPs) > 0 {
		pod.Status.PodIP = p.IPs[0].String()
	}
}

func containerPorts(ports []selectors.ContainerPort) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, corev1.ContainerPort{Name: p.Name, ContainerPort: p.Number, Protocol: proto})
	}
	return out
}

// inParallel runs do for 0..n-1 on workers goroutines; the first error stops the others.
func inParallel(ctx context.Context, n, workers int, do func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// progress logs how far a long load got every 15 seconds, until the returned function is called.
func progress(logf func(string, ...any), what string, done *atomic.Int64, total int, retries *atomic.Int64) func() {
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				logf("  %s: %d/%d (%.0f/s, %d writes repeated)", what, n, total, float64(n)/time.Since(start).Seconds(), retries.Load())
			}
		}
	}()
	return func() { close(stop) }
}
