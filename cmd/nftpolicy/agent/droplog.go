package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/nftpolicy/nftpolicy/controllers"
	"github.com/nftpolicy/nftpolicy/droplog"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Drop log modes of Options.DropLog. DropLogNamespace reads the NFLOG group and honours each
// namespace's controllers.LogAnnotation, logging nothing node-wide; deny and all are node-wide levels
// that the annotation overrides.
const (
	DropLogOff       = "off"
	DropLogNamespace = "namespace"
)

// Defaults of the drop log flags.
const (
	DefaultDropLogGroup    = 100
	DefaultDropLogPairRate = 5
	DefaultDropLogRate     = 50
)

// dropLogSettings reads Options.DropLog: nil when off.
func dropLogSettings(opts Options) (*controllers.DropLogSettings, error) {
	s := &controllers.DropLogSettings{Group: opts.DropLogGroup, PairRate: opts.DropLogPairRate, Rate: opts.DropLogRate}
	switch opts.DropLog {
	case "", DropLogOff:
		return nil, nil
	case DropLogNamespace:
		s.Level = controllers.DropLogOff
	default:
		level, err := controllers.ParseDropLogLevel(opts.DropLog)
		if err != nil || level == controllers.DropLogOff {
			return nil, fmt.Errorf("--drop-log %q: want off, namespace, deny or all", opts.DropLog)
		}
		s.Level = level
	}
	if s.PairRate == 0 || s.Rate == 0 {
		return nil, errors.New("--drop-log-pair-rate and --drop-log-rate must be positive")
	}
	return s, nil
}

// OpenDropLog binds the drop log's NFLOG group in the network namespace at netnsPath when opts turn
// drop logging on; nil otherwise.
func OpenDropLog(netnsPath string, opts Options) (nflog.Source, error) {
	if s, err := dropLogSettings(opts); err != nil || s == nil {
		return nil, err
	}
	src, err := nflog.Open(netnsPath, opts.DropLogGroup, nflog.Options{})
	if err != nil {
		return nil, fmt.Errorf("binding NFLOG group %d for the drop log: %w", opts.DropLogGroup, err)
	}
	return src, nil
}

// setupDropLog turns drop logging on in r, and adds the reader of dp.DropLog to the manager.
func setupDropLog(mgr ctrl.Manager, r *controllers.NodeReconciler, opts Options, dp Dataplane, log logr.Logger) error {
	settings, err := dropLogSettings(opts)
	if err != nil || settings == nil {
		return err
	}
	if dp.DropLog == nil {
		return errors.New("--drop-log needs the NFLOG group reader, and the dataplane has none")
	}
	var out io.Writer = os.Stdout
	if opts.DropLogOut != nil {
		out = opts.DropLogOut
	}
	var file *os.File
	if opts.DropLogFile != "" {
		if file, err = os.OpenFile(opts.DropLogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return fmt.Errorf("--drop-log-file: %w", err)
		}
		out = io.MultiWriter(out, file)
	}
	if err := metrics.Registry.Register(droplog.SuppressedTotal); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
		return fmt.Errorf("registering the drop log metrics: %w", err)
	}
	// Peers on other nodes are named from an index of the cached pods by address, looked up per new
	// flow: a map of every cluster pod rebuilt at each sync would cost O(cluster pods) per sync.
	peers, err := controllers.IndexPodsByAddress(context.Background(), mgr.GetCache())
	if err != nil {
		return err
	}
	peerOf := func(addr netip.Addr) (droplog.PodRef, bool) {
		p, ok := peers.Pod(addr)
		return droplog.PodRef{Namespace: p.Namespace, Name: p.Name}, ok
	}
	logger := droplog.New(droplog.Options{Node: opts.NodeName, Out: out, Suppressed: droplog.SuppressedTotal})
	r.DropLog = settings
	r.Committed = func(m *selectors.Model) {
		logger.SetDirectory(droplog.NewDirectory(m, r.Applier.Committed(), nil).WithPeers(peerOf))
	}
	log.Info("Drop logging on", "mode", opts.DropLog, "group", settings.Group)
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if file != nil {
			defer func() { _ = file.Close() }()
		}
		if err := logger.Run(ctx, dp.DropLog); err != nil && ctx.Err() == nil {
			return fmt.Errorf("reading the drop log: %w", err)
		}
		return nil
	}))
}
