package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	PodsPerSecond float64 `json:"podsPerSecond"` // a pod is two writes: create, then status
}

// newClientset talks protobuf and is not rate limited on the client side: loading is bound by the
// API server and etcd.
func newClientset(cfg *rest.Config) (*kubernetes.Clientset, error) {
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.QPS, c.Burst = -1, 0
	return kubernetes.NewForConfig(c)
}

// load creates the node under test, the namespaces, the pods (with their addresses, through the status
// subresource) and the policies of the generated cluster, with workers concurrent writers.
func load(ctx context.Context, cs *kubernetes.Clientset, c *generator.Cluster, workers int, logf func(string, ...any)) (LoadFigures, error) {
	start := time.Now()
	snap := c.Snapshot
	fig := LoadFigures{Namespaces: len(snap.Namespaces), Pods: len(snap.Pods), Policies: len(snap.Policies), Workers: workers}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: generator.Node, Labels: map[string]string{corev1.LabelHostname: generator.Node}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fig, fmt.Errorf("creating node %s: %w", generator.Node, err)
	}
	err := inParallel(ctx, len(snap.Namespaces), workers, func(ctx context.Context, i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: snap.Namespaces[i].Name, Labels: snap.Namespaces[i].Labels}}
		_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return fig, fmt.Errorf("creating namespaces: %w", err)
	}
	var done atomic.Int64
	stopProgress := progress(logf, "pods", &done, len(snap.Pods))
	err = inParallel(ctx, len(snap.Pods), workers, func(ctx context.Context, i int) error {
		defer done.Add(1)
		return createPod(ctx, cs, &snap.Pods[i])
	})
	stopProgress()
	if err != nil {
		return fig, fmt.Errorf("creating pods: %w", err)
	}
	podSeconds := time.Since(start).Seconds()
	err = inParallel(ctx, len(snap.Policies), workers, func(ctx context.Context, i int) error {
		np := snap.Policies[i].DeepCopy()
		_, err := cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return fig, fmt.Errorf("creating network policies: %w", err)
	}
	fig.Seconds = time.Since(start).Seconds()
	fig.PodsPerSecond = float64(len(snap.Pods)) / podSeconds
	return fig, nil
}

// createPod creates a running pod as a kubelet would leave it: spec first, then the status with its
// addresses.
func createPod(ctx context.Context, cs *kubernetes.Clientset, p *selectors.Pod) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec: corev1.PodSpec{
			NodeName:   p.Node,
			Containers: []corev1.Container{{Name: "app", Image: "bench.invalid/app:1", Ports: containerPorts(p.Ports)}},
		},
	}
	created, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase:     p.Phase,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	for _, ip := range p.IPs {
		created.Status.PodIPs = append(created.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(p.IPs) > 0 {
		created.Status.PodIP = p.IPs[0].String()
	}
	if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("writing the status of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
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
func progress(logf func(string, ...any), what string, done *atomic.Int64, total int) func() {
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
				logf("  %s: %d/%d (%.0f/s)", what, n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(stop) }
}
