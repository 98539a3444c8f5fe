package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The test control plane serves ClusterNetworkPolicy from the network-policy-api module's
// experimental CRD: a peer's experimental fields are stored, not pruned.
var _ = Describe("The ClusterNetworkPolicy CRD", func() {
	It("stores v1beta1 policies with experimental peers and serves them as v1alpha2", func(ctx SpecContext) {
		cnp := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "policy.networking.k8s.io/v1beta1",
			"kind":       "ClusterNetworkPolicy",
			"metadata":   map[string]any{"name": "crd-check"},
			"spec": map[string]any{
				"tier":     "Admin",
				"priority": int64(10),
				"subject":  map[string]any{"namespaces": map[string]any{}},
				"egress": []any{map[string]any{
					"action": "Deny",
					"to":     []any{map[string]any{"nodes": map[string]any{}}},
				}},
			},
		}}
		Expect(k8sClient.Create(ctx, cnp)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(k8sClient.Delete(ctx, cnp)).To(Succeed()) })

		got := &unstructured.Unstructured{}
		got.SetAPIVersion("policy.networking.k8s.io/v1alpha2")
		got.SetKind("ClusterNetworkPolicy")
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "crd-check"}, got)).To(Succeed())
		nodes, found, err := unstructured.NestedFieldNoCopy(got.Object, "spec", "egress")
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue())
		Expect(nodes).To(HaveExactElements(HaveKeyWithValue("to", HaveExactElements(HaveKey("nodes")))))
	})
})
