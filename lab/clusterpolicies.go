package lab

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// agentEnforcesClusterNetworkPolicy is the one switch that lets scenario files with
// ClusterNetworkPolicies run on the lab: the lab's agents then run with --cluster-network-policies.
const agentEnforcesClusterNetworkPolicy = true

// clusterPolicyLabel marks the ClusterNetworkPolicies the lab creates for a scenario, so that Setup
// and Teardown remove them (they live in no namespace of the file) and nothing else.
const clusterPolicyLabel = "lab.nftpolicy.io/scenario"

var _ scenario.ClusterPolicyCluster = (*Lab)(nil)

// EnforcesClusterNetworkPolicy reports whether scenario files may use ClusterNetworkPolicies.
func (l *Lab) EnforcesClusterNetworkPolicy() (bool, string) {
	if !agentEnforcesClusterNetworkPolicy {
		return false, "the nftpolicy agent does not enforce ClusterNetworkPolicy yet"
	}
	return true, ""
}

// ApplyClusterPolicies creates each policy, or replaces the spec of the one of that name.
func (l *Lab) ApplyClusterPolicies(ctx context.Context, policies []*v1beta1.ClusterNetworkPolicy) error {
	for _, policy := range policies {
		p := policy.DeepCopy()
		p.Labels = withLabel(p.Labels, clusterPolicyLabel, "true")
		err := l.client.Create(ctx, p)
		if apierrors.IsAlreadyExists(err) {
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var existing v1beta1.ClusterNetworkPolicy
				if err := l.client.Get(ctx, client.ObjectKeyFromObject(p), &existing); err != nil {
					return err
				}
				existing.Labels, existing.Annotations, existing.Spec = p.Labels, p.Annotations, p.Spec
				return l.client.Update(ctx, &existing)
			})
		}
		if err != nil {
			return fmt.Errorf("applying ClusterNetworkPolicy %s: %w", p.Name, err)
		}
	}
	return nil
}

// DeleteClusterPolicies deletes the named policies; one that does not exist is an error.
func (l *Lab) DeleteClusterPolicies(ctx context.Context, names []string) error {
	for _, name := range names {
		if err := l.client.Delete(ctx, &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			return fmt.Errorf("deleting ClusterNetworkPolicy %s: %w", name, err)
		}
	}
	return nil
}

// clearClusterPolicies deletes every ClusterNetworkPolicy the lab created for a scenario.
func (l *Lab) clearClusterPolicies(ctx context.Context) error {
	err := l.client.DeleteAllOf(ctx, &v1beta1.ClusterNetworkPolicy{}, client.MatchingLabels{clusterPolicyLabel: "true"})
	// A cluster without the CRD holds none (an attached cluster may lack it).
	if err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
		return fmt.Errorf("deleting the scenario's ClusterNetworkPolicies: %w", err)
	}
	return nil
}

func withLabel(labels map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	out[key] = value
	return out
}
