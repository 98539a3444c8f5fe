package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// DefaultCacheDir is where hack/build-k8s.sh caches kube-apiserver and etcd, one directory per
// Kubernetes version.
const DefaultCacheDir = "/var/cache/nftpolicy/envtest"

// controlPlane is etcd and kube-apiserver, started by envtest on loopback with free ports.
type controlPlane struct {
	env *envtest.Environment
}

// startControlPlane starts etcd and kube-apiserver with their data and certificates in the state
// directory, installs the NodeEnforcement CRD and writes the kubeconfig.
func (l *Lab) startControlPlane(ctx context.Context) error {
	begin := time.Now()
	assets, err := findAssets(ctx, l.opts)
	if err != nil {
		return err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(l.opts.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	env.ControlPlane.GetAPIServer().CertDir = filepath.Join(l.state.Dir, "apiserver")
	if err := os.MkdirAll(env.ControlPlane.GetAPIServer().CertDir, 0o700); err != nil {
		return err
	}
	etcdDir := filepath.Join(l.state.Dir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return err
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	// The agents' RBAC is under test: authorize with RBAC (envtest's default, set here so that the lab
	// never depends on it). envtest also passes the service account issuer and signing keys, which
	// the agents' tokens need (see rbac.go).
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	l.plane = &controlPlane{env: env}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	if err := os.WriteFile(l.state.Kubeconfig, env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if err := l.state.write(); err != nil {
		return err
	}
	l.restConfig = cfg
	if l.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if l.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	l.logf("Control plane up in %s (%s)", time.Since(begin).Round(10*time.Millisecond), cfg.Host)
	return nil
}

func (c *controlPlane) stop() error {
	if c.env == nil {
		return nil
	}
	env := c.env
	c.env = nil
	if err := env.Stop(); err != nil {
		return fmt.Errorf("stopping the control plane: %w", err)
	}
	return nil
}

// findAssets returns the directory holding kube-apiserver and etcd: the option, $KUBEBUILDER_ASSETS,
// the newest complete version in the setup cache, or what hack/build-k8s.sh prints.
func findAssets(ctx context.Context, opts Options) (string, error) {
	complete := func(dir string) bool {
		for _, bin := range []string{"kube-apiserver", "etcd"} {
			if st, err := os.Stat(filepath.Join(dir, bin)); err != nil || st.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	for _, dir := range []string{opts.AssetsDir, os.Getenv("KUBEBUILDER_ASSETS")} {
		if dir == "" {
			continue
		}
		if !complete(dir) {
			return "", fmt.Errorf("%s lacks kube-apiserver or etcd", dir)
		}
		return dir, nil
	}
	if dirs, _ := filepath.Glob(filepath.Join(DefaultCacheDir, "*")); len(dirs) > 0 {
		// Glob sorts; the last of equal-length versions is the newest.
		for i := len(dirs) - 1; i >= 0; i-- {
			if complete(dirs[i]) {
				return dirs[i], nil
			}
		}
	}
	script := filepath.Join(opts.RepoRoot, "hack", "build-k8s.sh")
	if _, err := os.Stat(script); err != nil {
		return "", errors.New("no kube-apiserver and etcd: set --assets or KUBEBUILDER_ASSETS, or run hack/build-k8s.sh")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("running %s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if !complete(dir) {
		return "", fmt.Errorf("%s printed %q, which lacks kube-apiserver or etcd", script, dir)
	}
	return dir, nil
}

// CachedAssets returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS or the
// newest complete version in the setup cache. Unlike Start it never builds them, so a test can skip
// at once when they are missing.
func CachedAssets() (string, error) {
	opts := Options{AssetsDir: os.Getenv("KUBEBUILDER_ASSETS")}
	if opts.AssetsDir == "" {
		dirs, _ := filepath.Glob(filepath.Join(DefaultCacheDir, "*", "kube-apiserver"))
		if len(dirs) == 0 {
			return "", fmt.Errorf("no kube-apiserver in %s: run hack/build-k8s.sh or set KUBEBUILDER_ASSETS", DefaultCacheDir)
		}
		opts.AssetsDir = filepath.Dir(dirs[len(dirs)-1])
	}
	return findAssets(context.Background(), opts)
}
