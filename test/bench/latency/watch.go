package main

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// watchEvent is one event the benchmark's own watch received, to time the API server's delivery of a
// change apart from the agent: the agent's watch is a client on the same machine like this one.
type watchEvent struct {
	at      time.Time
	kind    string // "NetworkPolicy" or "Pod"
	typ     watch.EventType
	name    string
	granted bool // a pod's access label is granted
}

// eventLog watches the policies and pods of the pair's namespace.
type eventLog struct {
	mu     sync.Mutex
	events []watchEvent
}

func watchPair(ctx context.Context, cs kubernetes.Interface) *eventLog {
	log := &eventLog{}
	go log.record(ctx, "NetworkPolicy", func(ctx context.Context) (watch.Interface, error) {
		return cs.NetworkingV1().NetworkPolicies(pairNamespace).Watch(ctx, metav1.ListOptions{})
	})
	go log.record(ctx, "Pod", func(ctx context.Context) (watch.Interface, error) {
		return cs.CoreV1().Pods(pairNamespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + clientName})
	})
	return log
}

// record keeps a watch open until ctx ends, opening it again when the API server ends it or reports
// an error (a fresh API server answers "too large resource version" until its watch cache is warm).
func (l *eventLog) record(ctx context.Context, kind string, open func(context.Context) (watch.Interface, error)) {
	for ctx.Err() == nil {
		w, err := open(ctx)
		if err != nil {
			logf("watching %s objects (retrying): %v", kind, err)
		} else {
			l.drain(ctx, w, kind)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// drain records the watch's events until it ends or reports an error.
func (l *eventLog) drain(ctx context.Context, w watch.Interface, kind string) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return
			}
			at := time.Now()
			obj, isObj := ev.Object.(client.Object)
			if !isObj {
				continue
			}
			l.mu.Lock()
			l.events = append(l.events, watchEvent{
				at: at, kind: kind, typ: ev.Type, name: obj.GetName(),
				granted: obj.GetLabels()[accessLabel] == accessGranted,
			})
			l.mu.Unlock()
		}
	}
}

// first returns when the first event after since matching match arrived.
func (l *eventLog) first(since time.Time, match func(watchEvent) bool) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.events {
		if !ev.at.Before(since) && match(ev) {
			return ev.at, true
		}
	}
	return time.Time{}, false
}
