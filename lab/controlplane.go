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

// DefaultCacheDir is where hack/build-k8s.sh caches kube-apiserver, etcd, kube-controller-manager
// and kube-proxy, one directory per Kubernetes version.
const DefaultCacheDir = "/var/cache/nftpolicy/envtest"

// assetBinaries are the programs a lab runs from its assets directory.
var assetBinaries = []string{"kube-apiserver", "etcd", kubeControllerManager, kubeProxy, kubeScheduler, agnhost}

// controlPlane is etcd and kube-apiserver, started by envtest on loopback with free ports,
// kube-controller-manager and kube-scheduler.
type controlPlane struct {
	env               *envtest.Environment
	apiserverLog      *os.File
	controllerManager *childProcess
	scheduler         *childProcess
}

// startControlPlane starts etcd and kube-apiserver with their data, certificates and log in the
// state directory, installs the NodeEnforcement and ClusterNetworkPolicy CRDs, writes the kubeconfig and starts
// kube-controller-manager and kube-scheduler.
func (l *Lab) startControlPlane(ctx context.Context) error {
	begin := time.Now()
	assets, err := findAssets(ctx, l.opts)
	if err != nil {
		return err
	}
	crds, err := CRDPaths(ctx, l.opts.RepoRoot)
	if err != nil {
		return err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	env.ControlPlane.GetAPIServer().CertDir = filepath.Join(l.state.Dir, "apiserver")
	if err := os.MkdirAll(env.ControlPlane.GetAPIServer().CertDir, 0o700); err != nil {
		return err
	}
	apiserverLog, err := l.logPath("kube-apiserver.log")
	if err != nil {
		return err
	}
	logFile, err := os.Create(apiserverLog)
	if err != nil {
		return err
	}
	env.ControlPlane.GetAPIServer().Out, env.ControlPlane.GetAPIServer().Err = logFile, logFile
	etcdDir := filepath.Join(l.state.Dir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return err
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	// The agents' RBAC is under test: authorize with RBAC (envtest's default, set here so that the lab
	// never depends on it). envtest also passes the service account issuer and signing keys, which
	// the agents' tokens need (see rbac.go).
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	// ClusterIPs from the lab's own ranges. The API server publishes its advertised address,
	// 127.0.0.1, as the endpoint of the kubernetes Service, whose family must be the primary range's;
	// it refuses to advertise ::1, so on an IPv6 lab the kubernetes Service has no endpoints.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", prefixList(l.ServiceCIDRs()))
	if l.ServiceCIDRs()[0].Addr().Is6() {
		env.ControlPlane.GetAPIServer().Configure().Set("endpoint-reconciler-type", "none")
	}
	kubeletFlags, err := l.newKubeletPKI()
	if err != nil {
		return err
	}
	for flag, value := range kubeletFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(flag, value)
	}
	l.plane = &controlPlane{env: env, apiserverLog: logFile}
	l.assets = assets
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane from %s: %w; see %s", assets, err, apiserverLog)
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
	if err := l.startControllerManager(ctx); err != nil {
		return err
	}
	if err := l.startScheduler(ctx); err != nil {
		return err
	}
	l.logf("Control plane up in %s (%s)", time.Since(begin).Round(10*time.Millisecond), cfg.Host)
	return nil
}

// stop stops kube-scheduler and kube-controller-manager, then the API server and etcd.
func (c *controlPlane) stop() error {
	var errs []error
	for _, child := range []**childProcess{&c.scheduler, &c.controllerManager} {
		if *child != nil {
			errs = append(errs, stopChildren([]*childProcess{*child}))
			*child = nil
		}
	}
	if c.env != nil {
		env := c.env
		c.env = nil
		if err := env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the control plane: %w", err))
		}
	}
	if c.apiserverLog != nil {
		c.apiserverLog.Close()
		c.apiserverLog = nil
	}
	return errors.Join(errs...)
}

// missingAssets lists the asset binaries that dir lacks.
func missingAssets(dir string) []string {
	var missing []string
	for _, bin := range assetBinaries {
		if st, err := os.Stat(filepath.Join(dir, bin)); err != nil || st.Mode()&0o111 == 0 {
			missing = append(missing, bin)
		}
	}
	return missing
}

// findAssets returns the directory holding kube-apiserver, etcd, kube-controller-manager and
// kube-proxy: the option, $KUBEBUILDER_ASSETS, the newest complete version in the setup cache, or
// what hack/build-k8s.sh prints.
func findAssets(ctx context.Context, opts Options) (string, error) {
	complete := func(dir string) bool { return len(missingAssets(dir)) == 0 }
	for _, dir := range []string{opts.AssetsDir, os.Getenv("KUBEBUILDER_ASSETS")} {
		if dir == "" {
			continue
		}
		if missing := missingAssets(dir); len(missing) > 0 {
			return "", fmt.Errorf("%s lacks %s (hack/build-k8s.sh builds them)", dir, strings.Join(missing, ", "))
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
		return "", errors.New("no kube-apiserver, etcd, kube-controller-manager and kube-proxy: set --assets or KUBEBUILDER_ASSETS, or run hack/build-k8s.sh")
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
	if missing := missingAssets(dir); len(missing) > 0 {
		return "", fmt.Errorf("%s printed %q, which lacks %s", script, dir, strings.Join(missing, ", "))
	}
	return dir, nil
}

// CachedAssets returns the directory holding the lab's Kubernetes binaries: $KUBEBUILDER_ASSETS or
// the newest version in the setup cache. Unlike Start it never builds them, so a test can skip
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
