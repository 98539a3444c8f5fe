package lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/lab/kubelet"
)

// agnhost is the upstream e2e suite's test program; the lab's kubelets run it for any agnhost image.
const agnhost = "agnhost"

// kubeletAddress is where the API server reaches every node's kubelet stand-in: the host's loopback,
// each node on a port of its own (the Node's kubeletEndpoint), named by the Node's InternalDNS
// address, the only address type the API server is told to use for kubelets. The nodes' own
// addresses are inside their namespaces, which the API server, on the host, does not reach.
const kubeletAddress = "127.0.0.1"

// kubeletPKIDir is the directory of the kubelets' CA and the API server's kubelet client certificate,
// in the state directory.
const kubeletPKIDir = "kubelet-pki"

// newKubeletPKI creates the kubelets' certificates and returns the API server flags that trust them
// and authenticate to them.
func (l *Lab) newKubeletPKI() (map[string]string, error) {
	pki, err := kubelet.NewPKI(filepath.Join(l.state.Dir, kubeletPKIDir))
	if err != nil {
		return nil, fmt.Errorf("creating the kubelets' certificates: %w", err)
	}
	l.kubeletPKI = pki
	return map[string]string{
		"kubelet-certificate-authority":   pki.CAFile,
		"kubelet-client-certificate":      pki.ClientCertFile,
		"kubelet-client-key":              pki.ClientKeyFile,
		"kubelet-preferred-address-types": string(corev1.NodeInternalDNS),
	}, nil
}

// startKubelet starts n's kubelet stand-in: it runs the pods kube-scheduler (or a user) binds to n
// that the lab does not run itself, and serves exec, logs and port forwarding for them.
func (l *Lab) startKubelet(ctx context.Context, n *node) error {
	k, err := kubelet.Start(ctx, kubelet.Config{
		NodeName:       n.name,
		Client:         l.clientset,
		Sandboxes:      &kubelet.NetlabSandboxes{Node: n.net, Families: l.clusterFamilies()},
		Images:         kubelet.DefaultImages(filepath.Join(l.assets, agnhost)),
		HostIPs:        l.nodeIPs(n),
		Listen:         kubeletAddress + ":0",
		PKI:            l.kubeletPKI,
		LogDir:         filepath.Join(l.state.Dir, "pods", n.name),
		SkipAnnotation: NetnsAnnotation,
		Logf:           l.logf,
	})
	if err != nil {
		return err
	}
	n.kubelet = k
	return nil
}

// stopKubelets stops every node's kubelet: their pods' processes end and their namespaces go.
func (l *Lab) stopKubelets() error {
	var errs []error
	for _, n := range l.nodes {
		if n.kubelet != nil {
			errs = append(errs, n.kubelet.Stop())
			n.kubelet = nil
		}
	}
	return errors.Join(errs...)
}
