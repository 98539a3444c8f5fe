package controllers_test

import (
	"fmt"
	"net/netip"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// The ClusterNetworkPolicies of the scenario files are written for the lab's API server: its CRD
// validation accepts every one of them (a server-side dry run), for both families' addresses.
var _ = Describe("The ClusterNetworkPolicy scenario files", func() {
	It("hold only policies the CRD accepts", func(ctx SpecContext) {
		scheme := runtime.NewScheme()
		Expect(v1beta1.Install(scheme)).To(Succeed())
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		paths, err := filepath.Glob(filepath.Join("..", "test", "e2e", "scenarios-cnp", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(paths).NotTo(BeEmpty())
		for _, path := range paths {
			s, err := scenario.Load(path)
			Expect(err).NotTo(HaveOccurred())
			for i := range s.Steps {
				for family, addr := range map[scenario.Family]string{scenario.IPv4: "10.244.1.5", scenario.IPv6: "fd00:10:244:1::5"} {
					m, err := s.Steps[i].Manifests(family, func(string) (netip.Addr, error) { return netip.MustParseAddr(addr), nil })
					Expect(err).NotTo(HaveOccurred())
					for _, cnp := range m.ClusterNetworkPolicies {
						where := fmt.Sprintf("%s step %d (%s): %s", filepath.Base(path), i, family, cnp.Name)
						Expect(c.Create(ctx, cnp.DeepCopy(), client.DryRunAll)).To(Succeed(), where)
					}
				}
			}
		}
	})
})
