package controllers

import (
	"fmt"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// CachedPod is what an agent's cache keeps of a Pod: the selectors.Pod that NetworkPolicy semantics
// read, and the resourceVersion (the informer tells a real update from a resync by it). Every agent
// caches every pod of the cluster, and a corev1.Pod struct is large even with every field it does not
// need left empty; a CachedPod holds only what policies read, and shares its namespace, node, phase,
// labels and ports with the other pods that have the same (bench/MEMORY.md has the figures).
//
// The cache's transform (see CacheOptions) turns every decoded Pod into a CachedPod before the
// informer stores it, so the pod informer's store and the pod event handlers see only CachedPods.
// Reading pods through the manager's client is therefore not possible (the client's cache reader
// refuses a type other than the one asked for); the agent reads them from the informer's store.
//
// A CachedPod is client.Object so that the informer can key, index and hand it to event handlers.
// Like every object of an informer's cache it is read-only: it shares its maps and slices.
type CachedPod struct {
	selectors.Pod
	ResourceVersion string
}

var _ client.Object = (*CachedPod)(nil)

// podOfObject returns the pod an informer store or event handler holds.
func podOfObject(obj any) (*CachedPod, error) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*CachedPod)
	if !ok {
		return nil, fmt.Errorf("the pod cache holds a %T, want a *CachedPod (is the cache's pod transform installed?)", obj)
	}
	return p, nil
}

// GetObjectKind reports no kind: a CachedPod is never serialized.
func (p *CachedPod) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject copies the pod with its own labels, addresses and ports.
func (p *CachedPod) DeepCopyObject() runtime.Object {
	c := *p
	c.Labels = maps.Clone(p.Labels)
	c.IPs = slices.Clone(p.IPs)
	c.Ports = slices.Clone(p.Ports)
	return &c
}

// The metav1.Object accessors of what a CachedPod keeps.

func (p *CachedPod) GetNamespace() string                          { return p.Namespace }
func (p *CachedPod) SetNamespace(namespace string)                 { p.Namespace = namespace }
func (p *CachedPod) GetName() string                               { return p.Name }
func (p *CachedPod) SetName(name string)                           { p.Name = name }
func (p *CachedPod) GetResourceVersion() string                    { return p.ResourceVersion }
func (p *CachedPod) SetResourceVersion(version string)             { p.ResourceVersion = version }
func (p *CachedPod) GetLabels() map[string]string                  { return p.Labels }
func (p *CachedPod) SetLabels(labels map[string]string)            { p.Labels = labels }
func (p *CachedPod) GetGenerateName() string                       { return "" }
func (p *CachedPod) GetUID() types.UID                             { return "" }
func (p *CachedPod) GetGeneration() int64                          { return 0 }
func (p *CachedPod) GetSelfLink() string                           { return "" }
func (p *CachedPod) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (p *CachedPod) GetDeletionTimestamp() *metav1.Time            { return nil }
func (p *CachedPod) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (p *CachedPod) GetAnnotations() map[string]string             { return nil }
func (p *CachedPod) GetFinalizers() []string                       { return nil }
func (p *CachedPod) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (p *CachedPod) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }

// The setters of fields a CachedPod does not keep drop the value, as the transform does.

func (p *CachedPod) SetGenerateName(string)                       {}
func (p *CachedPod) SetUID(types.UID)                             {}
func (p *CachedPod) SetGeneration(int64)                          {}
func (p *CachedPod) SetSelfLink(string)                           {}
func (p *CachedPod) SetCreationTimestamp(metav1.Time)             {}
func (p *CachedPod) SetDeletionTimestamp(*metav1.Time)            {}
func (p *CachedPod) SetDeletionGracePeriodSeconds(*int64)         {}
func (p *CachedPod) SetAnnotations(map[string]string)             {}
func (p *CachedPod) SetFinalizers([]string)                       {}
func (p *CachedPod) SetOwnerReferences([]metav1.OwnerReference)   {}
func (p *CachedPod) SetManagedFields([]metav1.ManagedFieldsEntry) {}
