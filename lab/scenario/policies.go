package scenario

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// clusterNetworkPolicyKind is the kind of policy.networking.k8s.io's cluster-scoped policies, which
// format v1.1 allows in apply and delete.
const clusterNetworkPolicyKind = "ClusterNetworkPolicy"

// ErrClusterNetworkPolicy fails a file that applies or deletes a ClusterNetworkPolicy on a cluster
// that does not enforce them (see ClusterPolicyCluster), and a caller of ParsePolicies that meets
// one: running such a file without them would check something else.
var ErrClusterNetworkPolicy = errors.New("ClusterNetworkPolicy is not supported")

// clusterNetworkPolicyVersions are the versions format v1.1 allows; they share one schema, read
// into v1beta1 (the storage version).
var clusterNetworkPolicyVersions = []string{"policy.networking.k8s.io/v1beta1", "policy.networking.k8s.io/v1alpha2"}

// Manifests are the objects of one apply.
type Manifests struct {
	NetworkPolicies        []*networkingv1.NetworkPolicy
	ClusterNetworkPolicies []*v1beta1.ClusterNetworkPolicy
}

// ParseManifests reads the multi-document YAML of an apply, placeholders already substituted: each
// document is a networking.k8s.io/v1 NetworkPolicy with a name and a namespace, or a
// ClusterNetworkPolicy (v1beta1 or v1alpha2, read as v1beta1) with a name and no namespace. Every
// field must be known; empty documents are skipped.
func ParseManifests(manifests string) (Manifests, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader([]byte(manifests))))
	var out Manifests
	for doc := 0; ; doc++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return Manifests{}, fmt.Errorf("reading document %d: %w", doc, err)
		}
		if err := out.parseDocument(data); err != nil {
			return Manifests{}, fmt.Errorf("document %d: %w", doc, err)
		}
	}
}

// ParsePolicies reads an apply that may hold NetworkPolicies only: a ClusterNetworkPolicy is
// ErrClusterNetworkPolicy, for callers that cannot apply them.
func ParsePolicies(manifests string) ([]*networkingv1.NetworkPolicy, error) {
	m, err := ParseManifests(manifests)
	if err != nil {
		return nil, err
	}
	if len(m.ClusterNetworkPolicies) > 0 {
		return nil, fmt.Errorf("%s: %w", m.ClusterNetworkPolicies[0].Name, ErrClusterNetworkPolicy)
	}
	return m.NetworkPolicies, nil
}

func (m *Manifests) parseDocument(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	// YAML 1.2, as a person reading the file does: a bare y or n (namespace y of the default cluster)
	// is a string, not the boolean a YAML 1.1 parser would make of it.
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		return nil
	}
	asJSON, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("converting to JSON: %w", err)
	}
	if obj, ok := raw.(map[string]any); ok && obj["kind"] == clusterNetworkPolicyKind {
		cnp, err := parseClusterPolicy(asJSON)
		if err != nil {
			return err
		}
		m.ClusterNetworkPolicies = append(m.ClusterNetworkPolicies, cnp)
		return nil
	}
	policy, err := parsePolicy(asJSON)
	if err != nil {
		return err
	}
	m.NetworkPolicies = append(m.NetworkPolicies, policy)
	return nil
}

func decodeStrict(asJSON []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(asJSON))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

func parseClusterPolicy(asJSON []byte) (*v1beta1.ClusterNetworkPolicy, error) {
	var cnp v1beta1.ClusterNetworkPolicy
	if err := decodeStrict(asJSON, &cnp); err != nil {
		return nil, err
	}
	if !slices.Contains(clusterNetworkPolicyVersions, cnp.APIVersion) {
		return nil, fmt.Errorf("apiVersion %q: a ClusterNetworkPolicy is one of %v", cnp.APIVersion, clusterNetworkPolicyVersions)
	}
	if cnp.Name == "" || cnp.Namespace != "" {
		return nil, errors.New("ClusterNetworkPolicy needs metadata.name and no namespace (it is cluster-scoped)")
	}
	cnp.APIVersion = clusterNetworkPolicyVersions[0]
	return &cnp, nil
}

func parsePolicy(asJSON []byte) (*networkingv1.NetworkPolicy, error) {
	var policy networkingv1.NetworkPolicy
	if err := decodeStrict(asJSON, &policy); err != nil {
		return nil, err
	}
	if policy.APIVersion != "networking.k8s.io/v1" || policy.Kind != "NetworkPolicy" {
		return nil, fmt.Errorf("apiVersion %q, kind %q: only networking.k8s.io/v1 NetworkPolicy and ClusterNetworkPolicy can be applied",
			policy.APIVersion, policy.Kind)
	}
	if policy.Name == "" || policy.Namespace == "" {
		return nil, errors.New("NetworkPolicy needs metadata.name and metadata.namespace")
	}
	return &policy, nil
}

// Manifests returns the objects of the step's apply for one family.
func (st *Step) Manifests(family Family, resolve Resolver) (Manifests, error) {
	text, err := Substitute(st.Apply, family, resolve)
	if err != nil {
		return Manifests{}, err
	}
	return ParseManifests(text)
}

// ClusterPolicyDeletes splits the step's delete into NetworkPolicies ("namespace/name") and the
// names of ClusterNetworkPolicies ("ClusterNetworkPolicy/name").
func (st *Step) ClusterPolicyDeletes() (policies, clusterPolicies []string) {
	for _, ref := range st.Delete {
		if name, ok := strings.CutPrefix(ref, clusterNetworkPolicyKind+"/"); ok {
			clusterPolicies = append(clusterPolicies, name)
		} else {
			policies = append(policies, ref)
		}
	}
	return policies, clusterPolicies
}

// UsesClusterNetworkPolicies reports whether any step applies or deletes a ClusterNetworkPolicy.
func (s *Scenario) UsesClusterNetworkPolicies() bool {
	for i := range s.Steps {
		st := &s.Steps[i]
		if _, cnps := st.ClusterPolicyDeletes(); len(cnps) > 0 {
			return true
		}
		// Stand-in addresses: only the kinds matter here. A text that cannot be read counts as using
		// them, so that a runner without support refuses it rather than guessing.
		text, err := expandPlaceholders(st.Apply, func(ph placeholder) (string, error) { return ph.standIn(), nil })
		if err != nil {
			return true
		}
		if m, err := ParseManifests(text); err != nil || len(m.ClusterNetworkPolicies) > 0 {
			return true
		}
	}
	return false
}
