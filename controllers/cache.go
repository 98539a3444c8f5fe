package controllers

import (
	"encoding/binary"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Bounds of what the cache shares between objects (see intern.go). A cluster of 50,000 pods
// repeats a few thousand strings (namespaces, nodes, label keys and values) and label sets; past the
// bounds a table starts over, so values that never repeat cost at most this much.
const (
	maxSharedStrings   = 1 << 16
	maxSharedLabelSets = 1 << 14
	maxSharedPortLists = 1 << 12
)

// CacheOptions returns the cache settings of a node's agent. Every agent caches every pod of the cluster
// (peers live on any node), so the cache keeps only what NetworkPolicy semantics read, and shares what
// repeats between objects: the transforms below run before an object enters the cache, and the event
// handlers and predicates see the stripped objects too. Pods are cached as CachedPods, not Pods.
//
// Cached objects share maps, slices and strings with each other: like every object of an informer's
// cache they are read-only, and a reader that wants to change one must deep-copy it first (the
// cache's Get and List do, unless told not to).
func CacheOptions(nodeName string) cache.Options {
	s := newSharing()
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                 {Transform: s.stripPod},
			&corev1.Namespace{}:           {Transform: s.stripNamespace},
			&networkingv1.NetworkPolicy{}: {Transform: s.stripPolicy},
			&policyv1alpha1.NodeEnforcement{}: {
				// An agent reads only its own node's object.
				Field: fields.OneTermEqualSelector("metadata.name", nodeName),
			},
		},
	}
}

// sharing holds the tables one agent's transforms share values through.
type sharing struct {
	values *internTable
	// ports holds the lists of ports of pods, by their ports.
	ports *internPool[[]selectors.ContainerPort]
}

func newSharing() *sharing {
	return &sharing{
		values: newInternTable(maxSharedStrings, maxSharedLabelSets),
		ports:  newInternPool[[]selectors.ContainerPort](maxSharedPortLists),
	}
}

var (
	_ toolscache.TransformFunc = (*sharing)(nil).stripPod
	_ toolscache.TransformFunc = (*sharing)(nil).stripNamespace
	_ toolscache.TransformFunc = (*sharing)(nil).stripPolicy
)

// stripPod turns a decoded Pod into the CachedPod the cache keeps: name, namespace, labels,
// spec.nodeName, spec.hostNetwork, status.phase, the addresses of status.podIPs (status.podIP when
// podIPs is empty; an address that does not parse is left out, which only ever removes a peer), every
// container's ports, and the resourceVersion. The namespace, node, phase, labels and ports are shared
// with every other pod that has the same. The input is not modified.
//
// A CachedPod is returned as it is: the informer transforms a streamed initial list twice (into a
// temporary store, then again when that replaces the cache's contents).
func (s *sharing) stripPod(in any) (any, error) {
	pod, ok := in.(*corev1.Pod)
	if !ok {
		return in, nil
	}
	v := s.values
	p := selectors.PodOf(pod)
	p.Namespace = v.String(p.Namespace)
	p.Labels = v.Labels(p.Labels)
	p.Node = v.String(p.Node)
	p.Phase = corev1.PodPhase(v.String(string(p.Phase)))
	p.Ports = s.sharedPorts(p.Ports)
	return &CachedPod{Pod: p, ResourceVersion: pod.ResourceVersion}, nil
}

// sharedPorts returns the list of ports equal to ports that every pod with the same ports in the same
// order shares; nil for none.
func (s *sharing) sharedPorts(ports []selectors.ContainerPort) []selectors.ContainerPort {
	if len(ports) == 0 {
		return nil
	}
	var scratch [64]byte // the key of a few ports stays off the heap
	key := scratch[:0]
	for _, p := range ports {
		key = binary.AppendUvarint(key, uint64(len(p.Name)))
		key = append(key, p.Name...)
		key = binary.AppendUvarint(key, uint64(p.Number))
		key = append(key, p.Protocol...)
		key = append(key, 0) // protocols are short names without NUL
	}
	return s.ports.Get(key, func() []selectors.ContainerPort {
		shared := make([]selectors.ContainerPort, len(ports))
		for i, p := range ports {
			shared[i] = selectors.ContainerPort{
				Name:     s.values.String(p.Name),
				Number:   p.Number,
				Protocol: corev1.Protocol(s.values.String(string(p.Protocol))),
			}
		}
		return shared
	})
}

// stripNamespace returns a new Namespace with its name, labels (what namespace selectors read), its
// drop log annotation (LogAnnotation) if any, and resourceVersion.
func (s *sharing) stripNamespace(in any) (any, error) {
	ns, ok := in.(*corev1.Namespace)
	if !ok {
		return in, nil
	}
	v := s.values
	return &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{Kind: v.String(ns.Kind), APIVersion: v.String(ns.APIVersion)},
		ObjectMeta: metav1.ObjectMeta{
			Name:            v.String(ns.Name),
			ResourceVersion: ns.ResourceVersion,
			Labels:          v.Labels(ns.Labels),
			Annotations:     logAnnotationOf(ns.Annotations, v),
		},
	}, nil
}

// stripPolicy drops a NetworkPolicy's managed fields and annotations but the mode
// (selectors.ModeAnnotation; kubectl's last-applied-configuration annotation alone is as large as
// the object) and shares the label maps
// of its selectors and the strings that repeat between policies. It changes the decoded object in
// place, which client-go allows a transform (it sees an object before anything else does); it only
// stores shared values into the object's fields and never writes into a shared map or slice. The uid,
// generation and timestamps stay: the predicates compare generations, and Events about the policy
// name it by uid.
func (s *sharing) stripPolicy(in any) (any, error) {
	np, ok := in.(*networkingv1.NetworkPolicy)
	if !ok {
		return in, nil
	}
	v := s.values
	np.ObjectMeta = metav1.ObjectMeta{
		Name:              np.Name,
		Namespace:         v.String(np.Namespace),
		UID:               np.UID,
		ResourceVersion:   np.ResourceVersion,
		Generation:        np.Generation,
		CreationTimestamp: np.CreationTimestamp,
		DeletionTimestamp: np.DeletionTimestamp,
		Labels:            v.Labels(np.Labels),
		Annotations:       modeAnnotationOf(np.Annotations, v),
	}
	s.shareSelector(&np.Spec.PodSelector)
	for i := range np.Spec.Ingress {
		s.sharePeers(np.Spec.Ingress[i].From)
	}
	for i := range np.Spec.Egress {
		s.sharePeers(np.Spec.Egress[i].To)
	}
	return np, nil
}

// modeAnnotationOf keeps only selectors.ModeAnnotation of a NetworkPolicy's annotations (nil
// without it).
func modeAnnotationOf(annotations map[string]string, v *internTable) map[string]string {
	value, ok := annotations[selectors.ModeAnnotation]
	if !ok {
		return nil
	}
	return map[string]string{selectors.ModeAnnotation: v.String(value)}
}

func (s *sharing) sharePeers(peers []networkingv1.NetworkPolicyPeer) {
	for i := range peers {
		if sel := peers[i].PodSelector; sel != nil {
			s.shareSelector(sel)
		}
		if sel := peers[i].NamespaceSelector; sel != nil {
			s.shareSelector(sel)
		}
	}
}

// shareSelector replaces the selector's matchLabels by the shared equal map, and the keys and
// operators of its expressions by shared strings.
func (s *sharing) shareSelector(sel *metav1.LabelSelector) {
	sel.MatchLabels = s.values.Labels(sel.MatchLabels)
	for i := range sel.MatchExpressions {
		e := &sel.MatchExpressions[i]
		e.Key = s.values.String(e.Key)
		e.Operator = metav1.LabelSelectorOperator(s.values.String(string(e.Operator)))
	}
}
