package selectors_test

import (
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// The target scale: 50k pods in the cluster, 10k policies, 110 pods on the node under test.
var fullScale = benchScale{pods: 50000, namespaces: 500, nodes: 455, policies: 10000}

func BenchmarkResolve(b *testing.B) {
	for _, bc := range []struct {
		name  string
		scale benchScale
	}{
		{"pods=5k/policies=1k", benchScale{pods: 5000, namespaces: 50, nodes: 46, policies: 1000}},
		{"pods=50k/policies=10k", fullScale},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := generateCluster(bc.scale)
			m := selectors.Resolve(s)
			b.ReportMetric(float64(len(m.LocalPods)), "localpods")
			b.ReportMetric(float64(len(m.AddressSets)), "addrsets")
			b.ReportMetric(float64(len(m.ServiceSets)), "svcsets")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				selectors.Resolve(s)
			}
		})
	}
}
