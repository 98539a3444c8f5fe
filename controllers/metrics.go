package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
)

// Metrics of the agent, served on controller-runtime's registry next to its workqueue and client metrics.
var (
	syncDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nftpolicy_sync_duration_seconds",
		Help:    "Time of one sync: reading the changed objects (or the whole cache), resolving, compiling and committing the transaction.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
	})
	syncFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nftpolicy_sync_failures_total",
		Help: "Syncs that failed, by the step that failed.",
	}, []string{"step"})
	cacheReads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nftpolicy_cache_reads_total",
		Help: "Syncs by what they read from the cache: only the objects that changed, or all of them (first sync, periodic resync, overflow).",
	}, []string{"scope"})
	incrementalMismatches = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nftpolicy_incremental_mismatches_total",
		Help: "Syncs whose incremental model differed from a full resolve of the cache (only checked with --verify-incremental); each was repaired by a rebuild.",
	})
	programmingLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nftpolicy_programming_latency_seconds",
		Help:    "Time from the agent observing a change of a pod, namespace or policy to the transaction that enforces it.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. 41s
	})
	driftRepairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nftpolicy_drift_repairs_total",
		Help: "Changes to the table made by another writer that were undone by replacing the whole table, by how they were found: notification or readback.",
	}, []string{"cause"})
	notificationsLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nftpolicy_notifications_lost_total",
		Help: "Times nf_tables notifications were lost (socket overrun or resubscription); each was followed by a read-back of the table.",
	})
	readBackDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nftpolicy_readback_duration_seconds",
		Help:    "Time to read the table back from the kernel and compare it with the last commit.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1ms .. 8s
	})
	isolatedPods = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nftpolicy_isolated_pods",
		Help: "Local pods isolated for ingress or egress by at least one policy.",
	})
	programmedChains = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nftpolicy_chains",
		Help: "Chains in the programmed table.",
	})
	watchFailing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nftpolicy_watch_failing",
		Help: "1 while the informer of a type fails to list or watch (the cache may be out of date; e.g. the agent's role lacks a permission), 0 once it recovered.",
	}, []string{"type"})
	programmedElements = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nftpolicy_set_elements",
		Help: "Elements of every set and verdict map in the programmed table.",
	})
)

// What a sync read from the cache, the label values of nftpolicy_cache_reads_total.
const (
	readChanged = "changed"
	readAll     = "all"
)

// Steps a sync can fail at, the label values of nftpolicy_sync_failures_total.
const (
	stepSnapshot   = "snapshot"
	stepInterfaces = "interfaces"
	stepReadBack   = "readback"
	stepApply      = "apply"
	stepConntrack  = "conntrack"
	stepStatus     = "status"
)

func init() {
	metrics.Registry.MustRegister(syncDuration, syncFailures, cacheReads, incrementalMismatches, programmingLatency,
		driftRepairs, notificationsLost, readBackDuration, isolatedPods, programmedChains, programmedElements, watchFailing)
	for _, cause := range []string{policyv1alpha1.DriftCauseNotification, policyv1alpha1.DriftCauseReadBack} {
		driftRepairs.WithLabelValues(cause)
	}
	for _, step := range []string{stepSnapshot, stepInterfaces, stepReadBack, stepApply, stepConntrack, stepStatus} {
		syncFailures.WithLabelValues(step)
	}
	for _, scope := range []string{readChanged, readAll} {
		cacheReads.WithLabelValues(scope)
	}
}
