package controllers_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kustomizeBuild renders a kustomization with bin/kustomize (installed by hack/setup.sh), or with
// kubectl's built-in kustomize when only kubectl is there.
func kustomizeBuild(dir string) []byte {
	var cmd *exec.Cmd
	if bin := filepath.Join("..", "bin", "kustomize"); fileExists(bin) {
		cmd = exec.Command(bin, "build", dir)
	} else if kubectl, err := exec.LookPath("kubectl"); err == nil {
		cmd = exec.Command(kubectl, "kustomize", dir)
	} else {
		Skip("neither bin/kustomize nor kubectl is installed: run hack/setup.sh")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "kustomize build %s: %s", dir, stderr.String())
	return out
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func decodeObjects(manifest []byte) []*unstructured.Unstructured {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		Expect(err).NotTo(HaveOccurred())
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// The manifests an operator installs are applied to the real API server: the CRDs and namespaces for
// real (everything else refers to them), every other object server-side as a dry run, so the API
// server's validation and admission judge each of them.
var _ = Describe("The install manifests", func() {
	apply := func(u *unstructured.Unstructured, opts ...client.ApplyOption) error {
		opts = append(opts, client.FieldOwner("manifest-test"), client.ForceOwnership)
		return k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
	}

	It("are accepted by the API server", func() {
		objs := decodeObjects(kustomizeBuild(filepath.Join("..", "config", "default")))
		kinds := map[string]int{}
		for _, u := range objs {
			kinds[u.GetKind()]++
		}
		Expect(kinds).To(HaveKeyWithValue("CustomResourceDefinition", 1))
		Expect(kinds).To(HaveKeyWithValue("DaemonSet", 1))
		Expect(kinds).To(HaveKeyWithValue("ClusterRole", 4)) // the agent's, its metrics auth, metrics-reader, explain-viewer
		Expect(kinds).To(HaveKeyWithValue("Role", 1))        // explain-agents, in the agents' namespace

		var rest []*unstructured.Unstructured
		for _, u := range objs {
			switch u.GetKind() {
			case "CustomResourceDefinition", "Namespace":
				Expect(apply(u)).To(Succeed(), "applying %s %s", u.GetKind(), u.GetName())
			default:
				rest = append(rest, u)
			}
		}
		for _, u := range rest {
			Expect(apply(u, client.DryRunAll)).To(Succeed(), "dry-run applying %s %s", u.GetKind(), u.GetName())
		}
	})

	It("include a sample the API server accepts", func() {
		objs := decodeObjects(kustomizeBuild(filepath.Join("..", "config", "samples")))
		Expect(objs).To(ContainElement(HaveField("Object", HaveKeyWithValue("kind", "NetworkPolicy"))))
		for _, u := range objs {
			Expect(apply(u, client.DryRunAll)).To(Succeed(), "dry-run applying %s %s", u.GetKind(), u.GetName())
		}
	})
})
