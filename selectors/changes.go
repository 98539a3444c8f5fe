package selectors

import "k8s.io/apimachinery/pkg/util/sets"

// Changes says what differs between a Model and the Model its Resolver returned before it, by id,
// so that the layers below redo only that. Everything not named is equal in both Models.
type Changes struct {
	// Full: there is no Model before this one (or it is unrelated): treat everything as changed.
	Full bool
	// AddressSets and ServiceSets are the IDs of the sets that appeared, went away or whose elements
	// changed.
	AddressSets sets.Set[string]
	ServiceSets sets.Set[string]
	// LocalPods are the keys ("namespace/name", LocalPod.Key) of the local pods that appeared, went
	// away, or whose addresses, isolations or ClusterNetworkPolicy rules changed.
	LocalPods sets.Set[string]
	// Policies are the policies that were added, deleted or edited, or started or stopped selecting
	// a local pod.
	Policies sets.Set[PolicyRef]
	// Problems: Model.Problems changed.
	Problems bool
	// ClusterProblems: Model.ClusterProblems changed.
	ClusterProblems bool
}

// FullChanges is the Changes of a Model with no Model before it.
func FullChanges() Changes { return Changes{Full: true} }

// None reports whether nothing changed.
func (c *Changes) None() bool {
	return !c.Full && !c.Problems && !c.ClusterProblems && c.AddressSets.Len() == 0 && c.ServiceSets.Len() == 0 &&
		c.LocalPods.Len() == 0 && c.Policies.Len() == 0
}

// Isolations reports whether any local pod or policy changed: pod and policy chains may differ.
func (c *Changes) Isolations() bool {
	return c.Full || c.LocalPods.Len() > 0 || c.Policies.Len() > 0
}

// AddressSet reports whether the AddressSet of an ID may have changed.
func (c *Changes) AddressSet(id string) bool { return c.Full || c.AddressSets.Has(id) }

// ServiceSet reports whether the ServiceSet of an ID may have changed.
func (c *Changes) ServiceSet(id string) bool { return c.Full || c.ServiceSets.Has(id) }

// noteAddressSet, noteServiceSet, noteLocalPod and notePolicy record a change.
func (c *Changes) noteAddressSet(id string) { c.AddressSets = insert(c.AddressSets, id) }
func (c *Changes) noteServiceSet(id string) { c.ServiceSets = insert(c.ServiceSets, id) }
func (c *Changes) noteLocalPod(key string)  { c.LocalPods = insert(c.LocalPods, key) }
func (c *Changes) notePolicy(ref PolicyRef) { c.Policies = insert(c.Policies, ref) }

func insert[T comparable](s sets.Set[T], item T) sets.Set[T] {
	if s == nil {
		s = sets.New[T]()
	}
	s.Insert(item)
	return s
}
