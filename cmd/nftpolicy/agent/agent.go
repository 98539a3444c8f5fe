// Package agent assembles the per-node agent: a controller-runtime manager whose one controller
// programs this node's nftables table. main parses flags into Options and calls Run or Cleanup.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/explain/dataplane"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
)

// Options configure one agent.
type Options struct {
	// NodeName is the node whose pods the agent programs.
	NodeName string
	// NetNSPath is the network namespace to program, by path; "" is the agent's own.
	NetNSPath string
	// Table is the nftables table (family inet) the agent owns.
	Table string
	// MetricsAddr and ProbeAddr are the listen addresses of the metrics and probe servers; "0" disables.
	MetricsAddr string
	ProbeAddr   string
	// MetricsSecure serves metrics over HTTPS to callers the API server authenticates (TokenReview)
	// and authorizes (SubjectAccessReview: get on the non-resource URL, e.g. /metrics), as
	// kubebuilder scaffolds it. false: plain HTTP to anyone who reaches the address.
	MetricsSecure bool
	// MetricsCertPath is a directory holding tls.crt and tls.key for the secure metrics server
	// (reloaded when they change); "": a self-signed certificate made at start.
	MetricsCertPath string
	// MetricsExtraHandlers are served by the metrics server beside /metrics, by path, behind the
	// same authentication and authorization when MetricsSecure.
	MetricsExtraHandlers map[string]http.Handler
	// PodDenyCounters counts the default deny of each isolated pod on its own, with a pod label on
	// nftpolicy_default_deny_connections_total, instead of per namespace (see
	// nft.CompileInput.PodDenyCounters).
	PodDenyCounters bool
	// ClusterNetworkPolicies makes the agent watch and enforce ClusterNetworkPolicies (their CRD
	// must be installed; see controllers.NodeReconciler.ClusterNetworkPolicies).
	ClusterNetworkPolicies bool
	// ResyncPeriod is how often an idle agent re-syncs; 0 is controllers.DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// MemoryLimit is the agent's memory limit in bytes (the container's); the Go runtime's soft limit
	// is set below it (see SoftMemoryLimit). 0: the runtime's own setting.
	MemoryLimit int64
	// SteadyGCPercent is the garbage collector's target (as GOGC) once the first sync has committed;
	// 0 keeps the runtime's setting. See returnFirstSyncMemory.
	SteadyGCPercent int
	// PprofAddr is the listen address of net/http/pprof, for profiling the agent's memory; "" or "0"
	// disables it.
	PprofAddr string
	// VerifyIncremental checks every incremental sync against a full resolve (see
	// controllers.NodeReconciler.VerifyIncremental).
	VerifyIncremental bool
	// PodInterfacePrefix turns the fail-closed mode on: the prefix of the CNI's host-side pod
	// interfaces, whose traffic is dropped until their pod is programmed (see
	// controllers.NodeReconciler.PodInterfacePrefix). "": off.
	PodInterfacePrefix string
	// DropLog is the drop log mode: off (""), namespace, deny or all (see DropLogNamespace).
	DropLog string
	// DropLogGroup is the NFLOG group of the drop log; DropLogPairRate and DropLogRate its limits in
	// packets per second (see nft.DropLog).
	DropLogGroup                 uint16
	DropLogPairRate, DropLogRate uint32
	// DropLogOut receives the drop log's JSON lines; nil: standard output. DropLogFile, when set, is
	// a file that receives them too (appended to).
	DropLogOut  io.Writer
	DropLogFile string
}

// Scheme holds every type the agent reads or writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(policyv1alpha1.AddToScheme(s))
	utilruntime.Must(v1beta1.Install(s))
	return s
}

// Dataplane is what an agent programs through: the kernel's seams, or fakes of them in tests.
type Dataplane struct {
	Backend    nft.Backend
	Interfaces nft.InterfaceResolver // nil: no anti-spoofing
	Conntrack  nft.ConntrackCleaner  // nil: tracked connections are not ended
	// ForeignChanges brings news of other writers' changes to the table; nil: the table is read
	// back on resyncs only.
	ForeignChanges <-chan nft.ForeignChange
	// Counters reads the table's named counters for the rule counter metrics; nil: no such metrics.
	Counters controllers.CounterReader
	// Kernel reads the table back for `kubectl nftpolicy explain`, and Flows looks connections up
	// in conntrack; nil Kernel: the agent does not serve explain.
	Kernel dataplane.Kernel
	Flows  dataplane.Conntrack
	// DropLog reads the drop log's NFLOG group; nil: drop logging cannot be turned on.
	DropLog nflog.Source
}

// OpenDataplane opens the netlink seams of the network namespace at netnsPath ("" = the agent's own),
// and watches table there for other writers' changes. close releases them; it leaves the table
// programmed.
func OpenDataplane(netnsPath, table string) (dp Dataplane, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	backend, err := kernel.NewNetlinkBackend(netnsPath)
	if err != nil {
		return dp, closeAll, err
	}
	closers = append(closers, func() { _ = backend.Close() })
	watch, err := backend.Watch(table)
	if err != nil {
		closeAll()
		return dp, func() {}, err
	}
	closers = append(closers, watch.Close)
	ifaces, err := kernel.NewNetlinkInterfaces(netnsPath)
	if err != nil {
		closeAll()
		return dp, func() {}, err
	}
	closers = append(closers, ifaces.Close)
	conntrack, err := kernel.NewNetlinkConntrack(netnsPath)
	if err != nil {
		closeAll()
		return dp, func() {}, err
	}
	closers = append(closers, conntrack.Close)
	return Dataplane{Backend: backend, Interfaces: ifaces, Conntrack: conntrack, ForeignChanges: watch.Events(), Counters: backend,
		Kernel: backend, Flows: conntrack}, closeAll, nil
}

// New assembles an agent, without starting it: a manager with the agent's cache, its node's reconciler,
// and the health and readiness checks. tweak, when not nil, adjusts the manager's options (tests run
// several agents in one process).
func New(ctx context.Context, cfg *rest.Config, opts Options, dp Dataplane, tweak func(*ctrl.Options)) (ctrl.Manager, *controllers.NodeReconciler, error) {
	if opts.NodeName == "" {
		return nil, nil, errors.New("the node name is required: set --node-name or NODE_NAME")
	}
	if opts.PodInterfacePrefix != "" {
		if err := nft.ValidIfnamePrefix(opts.PodInterfacePrefix); err != nil {
			return nil, nil, fmt.Errorf("--pod-interface-prefix: %w", err)
		}
		// Without interfaces no pod is ever programmed: every pod would be cut off.
		if dp.Interfaces == nil {
			return nil, nil, errors.New("--pod-interface-prefix needs the host interface resolver, and the dataplane has none")
		}
	}
	log := logf.FromContext(ctx).WithValues("node", klog.KRef("", opts.NodeName), "table", opts.Table)
	applier := nft.NewApplier(dp.Backend)
	metricsOpts, err := metricsServerOptions(ctx, opts, log)
	if err != nil {
		return nil, nil, err
	}
	if err := addExplain(&metricsOpts, opts, dp, applier, log); err != nil {
		return nil, nil, err
	}
	watches := controllers.NewWatchFailures(log)
	cacheOpts := controllers.CacheOptions(opts.NodeName)
	cacheOpts.DefaultWatchErrorHandler = watches.Handler
	mgrOpts := ctrl.Options{
		Scheme:                 Scheme(),
		Cache:                  cacheOpts,
		Metrics:                metricsOpts,
		HealthProbeBindAddress: opts.ProbeAddr,
		PprofBindAddress:       opts.PprofAddr,
		// One agent per node, each programming only its own node: there is nothing to elect.
		LeaderElection: false,
		Logger:         log,
	}
	if tweak != nil {
		tweak(&mgrOpts)
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the manager: %w", err)
	}
	r := &controllers.NodeReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("nftpolicy-agent"),
		NodeName:       opts.NodeName,
		Table:          opts.Table,
		Applier:        applier,
		Interfaces:     dp.Interfaces,
		Conntrack:      dp.Conntrack,
		ForeignChanges: dp.ForeignChanges,
		ResyncPeriod:   opts.ResyncPeriod,
		Watches:        watches,

		VerifyIncremental:      opts.VerifyIncremental,
		PodInterfacePrefix:     opts.PodInterfacePrefix,
		PodDenyCounters:        opts.PodDenyCounters,
		ClusterNetworkPolicies: opts.ClusterNetworkPolicies,
	}
	if err := setupDropLog(mgr, r, opts, dp, log.WithName("droplog")); err != nil {
		return nil, nil, err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, nil, fmt.Errorf("setting up the controller: %w", err)
	}
	if dp.Counters != nil && opts.MetricsAddr != "0" {
		counters := &controllers.RuleCounterCollector{Table: opts.Table, Applier: r.Applier, Reader: dp.Counters,
			PodDenyCounters: opts.PodDenyCounters, Log: log.WithName("counters")}
		if err := mgr.Add(counters); err != nil {
			return nil, nil, fmt.Errorf("adding the rule counter metrics: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, fmt.Errorf("adding the liveness check: %w", err)
	}
	if err := mgr.AddReadyzCheck("first-sync", r.ReadyCheck); err != nil {
		return nil, nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr, r, nil
}

// metricsServerOptions are the options of controller-runtime's metrics server, as kubebuilder's
// go/v4 scaffold sets them: HTTPS with authentication and authorization through the API server
// unless opts.MetricsSecure is off, and HTTP/1.1 only (HTTP/2's rapid reset and stream
// cancellation attacks, CVE-2023-44487 and CVE-2023-39325, are out of reach that way).
func metricsServerOptions(ctx context.Context, opts Options, log logr.Logger) (metricsserver.Options, error) {
	mo := metricsserver.Options{BindAddress: opts.MetricsAddr, ExtraHandlers: maps.Clone(opts.MetricsExtraHandlers)}
	if !opts.MetricsSecure {
		if opts.MetricsCertPath != "" {
			return mo, errors.New("--metrics-cert-path needs --metrics-secure")
		}
		return mo, nil
	}
	mo.SecureServing = true
	var auth *delegatedAuth
	mo.FilterProvider = func(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
		var err error
		if auth, err = newDelegatedAuth(ctx, cfg, hc, log); err != nil {
			return nil, err
		}
		return auth.filter, nil
	}
	mo.TLSOpts = []func(*tls.Config){func(c *tls.Config) {
		c.NextProtos = []string{"http/1.1"}
		if auth != nil {
			auth.tlsOption(c)
		}
	}}
	if opts.MetricsCertPath != "" {
		// controller-runtime falls back to a self-signed certificate when the files are missing:
		// a certificate asked for and not found is an error instead.
		for _, name := range []string{metricsCertName, metricsKeyName} {
			if _, err := os.Stat(filepath.Join(opts.MetricsCertPath, name)); err != nil {
				return mo, fmt.Errorf("--metrics-cert-path: %w", err)
			}
		}
		mo.CertDir, mo.CertName, mo.KeyName = opts.MetricsCertPath, metricsCertName, metricsKeyName
	}
	return mo, nil
}

// The files of the metrics server's certificate and key in Options.MetricsCertPath.
const (
	metricsCertName = "tls.crt"
	metricsKeyName  = "tls.key"
)

// addExplain serves `kubectl nftpolicy explain` (dataplane.Path) on the secure metrics server, behind
// its authentication and authorization; never over plain HTTP, where anyone reaching the port could
// read the node's table.
func addExplain(mo *metricsserver.Options, opts Options, dp Dataplane, applier *nft.Applier, log logr.Logger) error {
	if opts.MetricsAddr == "0" || dp.Kernel == nil {
		return nil
	}
	if !mo.SecureServing {
		log.Info("Not serving explain: it needs --metrics-secure")
		return nil
	}
	if mo.ExtraHandlers == nil {
		mo.ExtraHandlers = map[string]http.Handler{}
	}
	if _, taken := mo.ExtraHandlers[dataplane.Path]; taken {
		return fmt.Errorf("the metrics server already serves %s", dataplane.Path)
	}
	mo.ExtraHandlers[dataplane.Path] = &dataplane.Handler{Node: opts.NodeName, Table: opts.Table, Committed: applier.Committed, Kernel: dp.Kernel, Conntrack: dp.Flows}
	return nil
}

// Run runs the agent until ctx is done. It never removes the table on the way out: an isolated pod must
// not open because its node's agent restarts, crashes or is upgraded.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	dp, closeDataplane, err := OpenDataplane(opts.NetNSPath, opts.Table)
	if err != nil {
		return err
	}
	defer closeDataplane()
	if dp.DropLog, err = OpenDropLog(opts.NetNSPath, opts); err != nil {
		return err
	}
	if dp.DropLog != nil {
		defer func() { _ = dp.DropLog.Close() }()
	}
	softLimit := SetMemoryLimit(opts.MemoryLimit)
	mgr, r, err := New(ctx, cfg, opts, dp, nil)
	if err != nil {
		return err
	}
	go returnFirstSyncMemory(ctx, r.ReadyCheck, opts.SteadyGCPercent)
	log := mgr.GetLogger()
	// Not a runnable of the manager: those wait for the caches to sync, which is what may not happen.
	go r.ReportStaleCache(logf.IntoContext(ctx, log))
	log.Info("Starting the agent", "netns", opts.NetNSPath, "memoryLimit", opts.MemoryLimit, "goMemoryLimit", softLimit, "podInterfacePrefix", opts.PodInterfacePrefix)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	log.Info("Agent stopped; the table stays programmed")
	return nil
}

// Cleanup removes the agent's table, and with it every rule the agent programmed. It is the only way
// the rules go away: the uninstall step, never a shutdown.
func Cleanup(ctx context.Context, opts Options) error {
	backend, err := kernel.NewNetlinkBackend(opts.NetNSPath)
	if err != nil {
		return err
	}
	defer func() { _ = backend.Close() }()
	logf.FromContext(ctx).Info("Removing table", "table", opts.Table, "netns", opts.NetNSPath)
	return nft.RemoveTable(backend, opts.Table)
}
