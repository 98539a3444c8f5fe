package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controlPlane is etcd and kube-apiserver for one scale, and the kubeconfig the children use.
type controlPlane struct {
	env        *envtest.Environment
	cfg        *rest.Config
	clientset  *kubernetes.Clientset // the loader's and the event writer's (protobuf, no rate limit)
	dir        string                // etcd data (tmpfs) and the kubeconfig
	kubeconfig string
}

// unusedAdmissionPlugins are the API server's default admission plugins that only check objects
// against configuration this cluster never has (quotas, limit ranges, webhooks, admission policies,
// pod security labels, certificates, storage): each costs CPU on every one of the 100,000 writes of a
// 50k-pod load and changes nothing in what is stored. The plugins that change pods (Priority,
// DefaultTolerationSeconds) stay, so the agent lists pods as a real cluster's API server shapes them.
// ServiceAccount is off as in every envtest (no token controller runs).
var unusedAdmissionPlugins = []string{
	"ServiceAccount", "LimitRanger", "ResourceQuota", "PodSecurity",
	"MutatingAdmissionWebhook", "ValidatingAdmissionWebhook", "MutatingAdmissionPolicy", "ValidatingAdmissionPolicy",
	"StorageObjectInUseProtection", "PersistentVolumeClaimResize", "DefaultStorageClass", "DefaultIngressClass",
	"CertificateApproval", "CertificateSigning", "CertificateSubjectRestriction", "ClusterTrustBundleAttest",
	"PodResizeValidator", "NodeDeclaredFeatureValidator",
}

// startControlPlane starts etcd (the binary at etcdPath) with its data under tmpfsDir (loading 50k pods
// is bound by etcd's fsyncs on a disk), and kube-apiserver from assets, and installs the
// NodeEnforcement CRD.
func startControlPlane(assets, etcdPath, repoRoot, tmpfsDir string) (*controlPlane, error) {
	dir, err := os.MkdirTemp(tmpfsDir, "nftpolicy-memory-")
	if err != nil {
		return nil, err
	}
	etcdDir := filepath.Join(dir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir, Path: etcdPath}
	// etcd's default 2 GiB quota is close to what 50k pods with their history take.
	env.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", "8589934592")
	api := env.ControlPlane.GetAPIServer().Configure()
	api.Set("disable-admission-plugins", strings.Join(unusedAdmissionPlugins, ","))
	// One client (the loader, then the measured process) is all there is: priority and fairness only
	// adds work per request, and its queues must not delay the initial list the benchmark measures.
	api.Set("enable-priority-and-fairness", "false")
	api.Set("max-requests-inflight", "0")
	api.Set("max-mutating-requests-inflight", "0")
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", assets, err)
	}
	cp := &controlPlane{env: env, cfg: cfg, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := os.WriteFile(cp.kubeconfig, env.KubeConfig, 0o600); err != nil {
		_ = cp.stop()
		return nil, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if cp.clientset, err = newClientset(cfg); err != nil {
		_ = cp.stop()
		return nil, err
	}
	return cp, nil
}

// podLists counts the LIST requests for pods the API server has answered. An informer that streams
// its initial list (client-go's WatchListClient, when the API server and etcd support it) sends a
// WATCH instead: the count tells which way a measured process got its pods.
func (cp *controlPlane) podLists(ctx context.Context) (float64, error) {
	body, err := cp.clientset.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	var n float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="pods"`) ||
			!strings.Contains(line, `verb="LIST"`) || !strings.Contains(line, `subresource=""`) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				n += v
			}
		}
	}
	return n, nil
}

func (cp *controlPlane) stop() error {
	err := cp.env.Stop()
	if rmErr := os.RemoveAll(cp.dir); err == nil {
		err = rmErr
	}
	return err
}
