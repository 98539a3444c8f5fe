package main

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controlPlane is etcd and kube-apiserver for one scale, and the kubeconfig the children use.
type controlPlane struct {
	env        *envtest.Environment
	cfg        *rest.Config
	dir        string // etcd data (tmpfs) and the kubeconfig
	kubeconfig string
}

// startControlPlane starts etcd with its data under tmpfsDir (loading 50k pods is bound by etcd's
// fsyncs on a disk) and installs the NodeEnforcement CRD.
func startControlPlane(assets, repoRoot, tmpfsDir string) (*controlPlane, error) {
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
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	// etcd's default 2 GiB quota is close to what 50k pods with their history take.
	env.ControlPlane.Etcd.Configure().Set("quota-backend-bytes", "8589934592")
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
	return cp, nil
}

func (cp *controlPlane) stop() error {
	err := cp.env.Stop()
	if rmErr := os.RemoveAll(cp.dir); err == nil {
		err = rmErr
	}
	return err
}
