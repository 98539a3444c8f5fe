package controllers

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
)

// CacheOptions returns the cache settings of a node's agent. Every agent caches every pod of the cluster
// (peers live on any node), so the cache keeps only what NetworkPolicy semantics read: the transforms
// below run before an object enters the cache, and the event handlers and predicates see the stripped
// objects too.
func CacheOptions(nodeName string) cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                 {Transform: stripPod},
			&corev1.Namespace{}:           {Transform: stripMetadata},
			&networkingv1.NetworkPolicy{}: {Transform: stripMetadata},
			&policyv1alpha1.NodeEnforcement{}: {
				// An agent reads only its own node's object.
				Field: fields.OneTermEqualSelector("metadata.name", nodeName),
			},
		},
	}
}

var _ toolscache.TransformFunc = stripPod

// stripPod keeps what selectors.Pod is built from: name, namespace, labels, spec.nodeName,
// spec.hostNetwork, the containers' ports, status.phase and status.podIPs.
func stripPod(in any) (any, error) {
	pod, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	stripped := &corev1.Pod{
		TypeMeta:   pod.TypeMeta,
		ObjectMeta: strippedMeta(pod.ObjectMeta),
		Spec: corev1.PodSpec{
			NodeName:    pod.Spec.NodeName,
			HostNetwork: pod.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{
			Phase:  pod.Status.Phase,
			PodIP:  pod.Status.PodIP,
			PodIPs: pod.Status.PodIPs,
		},
	}
	for _, c := range pod.Spec.Containers {
		if len(c.Ports) > 0 {
			stripped.Spec.Containers = append(stripped.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	return stripped, nil
}

// stripMetadata drops managed fields and annotations (kubectl's last-applied-configuration annotation
// alone is as large as the object).
func stripMetadata(in any) (any, error) {
	switch o := in.(type) {
	case *corev1.Namespace:
		o.ObjectMeta = strippedMeta(o.ObjectMeta)
		o.Spec = corev1.NamespaceSpec{}
		o.Status = corev1.NamespaceStatus{}
	case *networkingv1.NetworkPolicy:
		o.ObjectMeta = strippedMeta(o.ObjectMeta)
	}
	return in, nil
}

func strippedMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            m.Labels,
	}
}
