package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// measuredKinds are the incremental events of measurement 4.
var measuredKinds = []generator.EventKind{generator.PodRelabel, generator.PodIPChange, generator.PolicyEdit}

// eventWriter turns the generator's events into writes to the API server: the generator changes its
// snapshot in place and describes the change ("pod ns/name ..."), and the writer sends the object's
// new state.
type eventWriter struct {
	cs       *kubernetes.Clientset
	cluster  *generator.Cluster
	pods     map[string]int // "ns/name" -> index in the snapshot (relabels and address changes keep order)
	policies map[string]int
}

func newEventWriter(cs *kubernetes.Clientset, c *generator.Cluster) *eventWriter {
	w := &eventWriter{cs: cs, cluster: c, pods: map[string]int{}, policies: map[string]int{}}
	for i, p := range c.Snapshot.Pods {
		w.pods[p.Namespace+"/"+p.Name] = i
	}
	for i, np := range c.Snapshot.Policies {
		w.policies[np.Namespace+"/"+np.Name] = i
	}
	return w
}

// send applies one event of kind to the generated cluster and writes it to the API server.
func (w *eventWriter) send(ctx context.Context, kind generator.EventKind) (string, error) {
	desc, err := w.cluster.Apply(kind)
	if err != nil {
		return "", err
	}
	fields := strings.Fields(desc)
	if len(fields) < 2 {
		return desc, fmt.Errorf("cannot find the object of event %q", desc)
	}
	key := fields[1]
	ns, name, _ := strings.Cut(key, "/")
	switch kind {
	case generator.PodRelabel:
		p := w.cluster.Snapshot.Pods[w.pods[key]]
		err = w.mergePatch(ctx, ns, name, "pod", map[string]any{"metadata": map[string]any{"labels": p.Labels}})
	case generator.PodIPChange:
		p := w.cluster.Snapshot.Pods[w.pods[key]]
		ips := []map[string]string{}
		for _, ip := range p.IPs {
			ips = append(ips, map[string]string{"ip": ip.String()})
		}
		err = w.mergePatch(ctx, ns, name, "pod-status", map[string]any{"status": map[string]any{"podIP": p.IPs[0].String(), "podIPs": ips}})
	case generator.PolicyEdit:
		np := w.cluster.Snapshot.Policies[w.policies[key]]
		err = w.mergePatch(ctx, ns, name, "policy", map[string]any{"spec": map[string]any{"ingress": np.Spec.Ingress}})
	default:
		err = fmt.Errorf("event kind %s is not measured", kind)
	}
	if err != nil {
		return desc, fmt.Errorf("writing event %q: %w", desc, err)
	}
	return desc, nil
}

// mergePatch sends a JSON merge patch, which replaces lists (podIPs, ingress) instead of merging them.
func (w *eventWriter) mergePatch(ctx context.Context, ns, name, what string, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{}
	switch what {
	case "pod":
		_, err = w.cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, body, opts)
	case "pod-status":
		_, err = w.cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, body, opts, "status")
	case "policy":
		_, err = w.cs.NetworkingV1().NetworkPolicies(ns).Patch(ctx, name, types.MergePatchType, body, opts)
	}
	return err
}
