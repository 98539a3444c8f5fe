package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// SnapshotOf lets the external tests resolve the cluster in full, as c (an uncached client) lists it,
// to compare with the agent's incremental result.
func SnapshotOf(ctx context.Context, c client.Reader, node string) (*selectors.Snapshot, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	ps := make([]selectors.Pod, 0, len(pods.Items))
	for i := range pods.Items {
		ps = append(ps, selectors.PodOf(&pods.Items[i]))
	}
	return snapshotWith(ctx, c, node, ps, true)
}
