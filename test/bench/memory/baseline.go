package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/cmd/nftpolicy/agent"
	"github.com/nftpolicy/nftpolicy/controllers"
)

// runBaseline is the baseline process: a controller-runtime manager with the agent's scheme and cache
// options that informs every kind the agent caches (pods, namespaces, NetworkPolicies, its own
// NodeEnforcement) and does nothing with them. It is ready once its caches synced.
func runBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	node := fs.String("node-name", "", "node whose cache options to use")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	metricsAddr := fs.String("metrics-bind-address", "", "metrics listen address")
	probeAddr := fs.String("health-probe-bind-address", "", "probe listen address")
	pprofAddr := fs.String("pprof-bind-address", "", "pprof listen address; empty: none")
	memoryLimit := fs.String("memory-limit", "", "as the agent's --memory-limit")
	transforms := fs.String("transforms", "agent", `the cache's transforms: "agent" (controllers.CacheOptions) or "managed-fields" (only managed fields dropped, what a controller-runtime manager commonly does)`)
	klog.InitFlags(fs) // -v: what client-go's reflectors do, in the baseline's log
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(klog.NewKlogr())
	limit, err := agent.ParseMemoryLimit(*memoryLimit)
	if err != nil {
		return err
	}
	agent.SetMemoryLimit(limit)
	cacheOpts := controllers.CacheOptions(*node)
	switch *transforms {
	case "agent":
	case "managed-fields":
		for obj, byObject := range cacheOpts.ByObject {
			byObject.Transform = nil
			cacheOpts.ByObject[obj] = byObject
		}
	default:
		return fmt.Errorf("unknown --transforms %q", *transforms)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", *kubeconfig, err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 agent.Scheme(),
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress: *probeAddr,
		PprofBindAddress:       *pprofAddr,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Namespace{}, &networkingv1.NetworkPolicy{}, &policyv1alpha1.NodeEnforcement{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("informing %T: %w", obj, err)
		}
	}
	var synced atomic.Bool
	if err := mgr.AddReadyzCheck("caches-synced", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	go func() {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			synced.Store(true)
		}
	}()
	return mgr.Start(ctx)
}
