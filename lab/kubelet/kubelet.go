package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// Kubelet runs one node's pods and serves its kubelet API.
type Kubelet struct {
	cfg      Config
	ctx      context.Context
	cancel   context.CancelFunc
	listener net.Listener
	server   *http.Server
	served   chan struct{} // closed when the server returned
	workers  sync.WaitGroup

	// podStore holds the pods bound to this node, skipped ones included.
	podStore cache.Store

	mu      sync.Mutex
	pods    map[types.UID]*podWorker
	deleted map[types.UID]bool // pods this kubelet deleted: later events about them are stale
	stopped bool
}

// Start serves the kubelet API on cfg.Listen and runs the pods bound to cfg.NodeName until Stop.
func Start(ctx context.Context, cfg Config) (*Kubelet, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("configuring the kubelet: %w", err)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the pod log directory: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening for the kubelet API of %s: %w", cfg.NodeName, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k := &Kubelet{
		cfg:      cfg,
		ctx:      ctx,
		cancel:   cancel,
		listener: ln,
		served:   make(chan struct{}),
		pods:     map[types.UID]*podWorker{},
		deleted:  map[types.UID]bool{},
	}
	k.server = &http.Server{
		Handler:           k.routes(),
		TLSConfig:         cfg.PKI.ServerTLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		// Refused handshakes and broken streams go to the lab's log, not the process's stderr.
		ErrorLog: log.New(logfWriter(cfg.Logf), "kubelet API of "+cfg.NodeName+": ", 0),
	}
	go func() {
		defer close(k.served)
		if err := k.server.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logf("kubelet API of %s stopped: %v", cfg.NodeName, err)
		}
	}()
	if err := k.watchPods(); err != nil {
		_ = k.Stop()
		return nil, err
	}
	cfg.Logf("Kubelet of %s serving on %s", cfg.NodeName, ln.Addr())
	return k, nil
}

// Port is the kubelet API's port: the Node's status.daemonEndpoints.kubeletEndpoint.port.
func (k *Kubelet) Port() int { return k.listener.Addr().(*net.TCPAddr).Port }

// Stop stops every pod's processes, removes their sandboxes and closes the server. The Pod objects
// stay as they are.
func (k *Kubelet) Stop() error {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	k.cancel()
	k.workers.Wait()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := k.server.Shutdown(shutdown)
	if err != nil {
		err = errors.Join(err, k.server.Close())
	}
	<-k.served
	return err
}

// watchPods runs an informer over the pods bound to this node and waits for its first list.
func (k *Kubelet) watchPods() error {
	selector := fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
	factory := informers.NewSharedInformerFactoryWithOptions(k.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	informer := factory.Core().V1().Pods().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podChanged(obj) },
		UpdateFunc: func(_, obj any) { k.podChanged(obj) },
		DeleteFunc: k.podGone,
	}); err != nil {
		return err
	}
	k.podStore = informer.GetStore()
	factory.Start(k.ctx.Done())
	synced, cancel := context.WithTimeout(k.ctx, time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(synced.Done(), informer.HasSynced) {
		return fmt.Errorf("listing the pods of %s: timed out", k.cfg.NodeName)
	}
	return nil
}

// podChanged hands the pod to its worker, starting one for a pod this kubelet runs.
func (k *Kubelet) podChanged(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || k.skipped(pod) {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.deleted[pod.UID] {
		return
	}
	w := k.pods[pod.UID]
	if w == nil {
		if pod.DeletionTimestamp == nil && terminal(pod.Status.Phase) {
			return // finished before this kubelet started: nothing to run
		}
		w = newPodWorker(k, pod)
		k.pods[pod.UID] = w
		k.workers.Add(1)
		go w.run(k.ctx)
	}
	w.update(pod)
}

// podGone tells the worker of a pod that the object is gone from the API.
func (k *Kubelet) podGone(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.deleted, pod.UID)
	if w := k.pods[pod.UID]; w != nil {
		w.markGone()
	}
}

// skippedPod returns the pod namespace/name of this node if it carries SkipAnnotation.
func (k *Kubelet) skippedPod(namespace, name string) (*corev1.Pod, bool) {
	obj, ok, err := k.podStore.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	pod, ok := obj.(*corev1.Pod)
	return pod, ok && k.skipped(pod)
}

func (k *Kubelet) skipped(pod *corev1.Pod) bool {
	if k.cfg.SkipAnnotation == "" {
		return false
	}
	_, ok := pod.Annotations[k.cfg.SkipAnnotation]
	return ok
}

// forget drops a worker that finished; deletedByUs marks the pod's later events as stale.
func (k *Kubelet) forget(uid types.UID, deletedByUs bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pods, uid)
	if deletedByUs {
		k.deleted[uid] = true
	}
}

// worker returns the worker of the pod namespace/name, the newest if names were reused.
func (k *Kubelet) worker(namespace, name string) *podWorker {
	k.mu.Lock()
	defer k.mu.Unlock()
	var found *podWorker
	for _, w := range k.pods {
		if w.namespace == namespace && w.name == name && (found == nil || w.created.After(found.created)) {
			found = w
		}
	}
	return found
}

// logfWriter turns a log.Logger's lines into Logf calls.
type logfWriter func(string, ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func terminal(phase corev1.PodPhase) bool {
	return phase == corev1.PodSucceeded || phase == corev1.PodFailed
}
