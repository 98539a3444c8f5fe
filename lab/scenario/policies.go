package scenario

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// clusterNetworkPolicyKind is the kind of policy.networking.k8s.io's cluster-scoped policies, which
// format v1.1 allows in apply and delete.
const clusterNetworkPolicyKind = "ClusterNetworkPolicy"

// ErrClusterNetworkPolicy fails a file that applies or deletes a ClusterNetworkPolicy: nftpolicy
// enforces NetworkPolicies only, and running the file without them would check something else.
var ErrClusterNetworkPolicy = errors.New("ClusterNetworkPolicy is not supported yet: nftpolicy enforces networking.k8s.io/v1 NetworkPolicies only")

// ParsePolicies reads the multi-document YAML of an apply, placeholders already substituted. Every
// document must be a networking.k8s.io/v1 NetworkPolicy with a name and a namespace, and every field
// must be known; empty documents are skipped, so "" or blank text is no policy at all.
func ParsePolicies(manifests string) ([]*networkingv1.NetworkPolicy, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader([]byte(manifests))))
	var policies []*networkingv1.NetworkPolicy
	for doc := 0; ; doc++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return policies, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading document %d: %w", doc, err)
		}
		policy, err := parsePolicy(data)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if policy != nil {
			policies = append(policies, policy)
		}
	}
}

// parsePolicy reads one document; nil, nil for a document holding nothing but comments or blanks.
func parsePolicy(data []byte) (*networkingv1.NetworkPolicy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	// YAML 1.2, as a person reading the file does: a bare y or n (namespace y of the default cluster)
	// is a string, not the boolean a YAML 1.1 parser would make of it.
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, nil
	}
	if m, ok := raw.(map[string]any); ok && m["kind"] == clusterNetworkPolicyKind {
		return nil, ErrClusterNetworkPolicy
	}
	asJSON, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("converting to JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(asJSON))
	dec.DisallowUnknownFields()
	var policy networkingv1.NetworkPolicy
	if err := dec.Decode(&policy); err != nil {
		return nil, err
	}
	if policy.APIVersion != "networking.k8s.io/v1" || policy.Kind != "NetworkPolicy" {
		return nil, fmt.Errorf("apiVersion %q, kind %q: only networking.k8s.io/v1 NetworkPolicy can be applied",
			policy.APIVersion, policy.Kind)
	}
	if policy.Name == "" || policy.Namespace == "" {
		return nil, errors.New("NetworkPolicy needs metadata.name and metadata.namespace")
	}
	return &policy, nil
}

// Policies returns the NetworkPolicies of the step's apply for one family.
func (st *Step) Policies(family Family, resolve Resolver) ([]*networkingv1.NetworkPolicy, error) {
	text, err := Substitute(st.Apply, family, resolve)
	if err != nil {
		return nil, err
	}
	return ParsePolicies(text)
}
