package selectors

import (
	"sort"

	"k8s.io/apimachinery/pkg/labels"
)

// clusterIndex holds the eligible pods of the whole cluster grouped by namespace, so that a peer
// selector only ever scans the namespaces it can match.
type clusterIndex struct {
	namespaces      []string              // every namespace with a pod or an object, sorted
	namespaceLabels map[string]labels.Set // by namespace name
	podsByNamespace map[string][]*Pod     // eligible pods, in snapshot order
	allPods         []*Pod                // eligible pods, in snapshot order
	// byValue indexes the pods of a namespace by the value of one label key: built for a
	// (namespace, key) the first time a selector requires a value of that key there.
	byValue   map[namespacedKey]map[string][]*Pod
	local     []*Pod           // eligible pods on the node, sorted by namespace then name
	localByNS map[string][]int // indexes into local, by namespace
}

func newClusterIndex(s *Snapshot) *clusterIndex {
	idx := &clusterIndex{
		namespaceLabels: make(map[string]labels.Set, len(s.Namespaces)),
		podsByNamespace: make(map[string][]*Pod),
		localByNS:       make(map[string][]int),
		byValue:         make(map[namespacedKey]map[string][]*Pod),
	}
	for i := range s.Namespaces {
		ns := &s.Namespaces[i]
		idx.namespaceLabels[ns.Name] = namespaceLabels(ns.Name, ns.Labels)
	}
	for i := range s.Pods {
		p := &s.Pods[i]
		if !eligible(p) {
			continue
		}
		idx.allPods = append(idx.allPods, p)
		idx.podsByNamespace[p.Namespace] = append(idx.podsByNamespace[p.Namespace], p)
		if _, ok := idx.namespaceLabels[p.Namespace]; !ok {
			idx.namespaceLabels[p.Namespace] = namespaceLabels(p.Namespace, nil)
		}
	}
	for name := range idx.namespaceLabels {
		idx.namespaces = append(idx.namespaces, name)
	}
	sort.Strings(idx.namespaces)
	// Only the local pods need an order: it is the order of Model.LocalPods. Every set built from
	// the other pods is normalized.
	for _, p := range idx.allPods {
		if p.Node == s.Node {
			idx.local = append(idx.local, p)
		}
	}
	sortPods(idx.local)
	for i, p := range idx.local {
		idx.localByNS[p.Namespace] = append(idx.localByNS[p.Namespace], i)
	}
	return idx
}

func sortPods(pods []*Pod) {
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
}

type namespacedKey struct{ namespace, key string }

// podsWithLabel returns the eligible pods of a namespace whose label key has the value.
func (idx *clusterIndex) podsWithLabel(namespace, key, value string) []*Pod {
	nk := namespacedKey{namespace, key}
	byValue, ok := idx.byValue[nk]
	if !ok {
		byValue = make(map[string][]*Pod)
		for _, p := range idx.podsByNamespace[namespace] {
			if v, ok := p.Labels[key]; ok {
				byValue[v] = append(byValue[v], p)
			}
		}
		idx.byValue[nk] = byValue
	}
	return byValue[value]
}
