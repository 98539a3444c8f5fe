package agent

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// softLimitPercent is the share of the agent's memory limit given to the Go runtime as its soft limit
// (GOMEMLIMIT). The runtime counts only the memory it manages against it; the rest is headroom for
// what it does not count and for the time the collector needs to catch up with a burst.
const softLimitPercent = 90

// ParseMemoryLimit reads the agent's memory limit: a Kubernetes quantity ("256Mi"), or the plain
// number of bytes that the downward API gives for limits.memory. "" and "0" mean no limit.
func ParseMemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("parsing the memory limit %q: %w", s, err)
	}
	if q.Sign() < 0 {
		return 0, fmt.Errorf("the memory limit %q is negative", s)
	}
	return q.Value(), nil
}

// SoftMemoryLimit is the Go runtime's soft memory limit for an agent limited to limit bytes.
func SoftMemoryLimit(limit int64) int64 {
	return limit / 100 * softLimitPercent
}

// SetMemoryLimit makes the garbage collector work harder as the agent nears limit, instead of
// letting the heap double between collections (GOGC=100) up to where the kernel kills the container:
// the initial list of every pod of the cluster is a burst of garbage that would otherwise decide the
// agent's memory for good. limit 0 leaves the runtime's setting (GOMEMLIMIT, else none). It returns
// the soft limit in force.
func SetMemoryLimit(limit int64) int64 {
	if limit <= 0 {
		return debug.SetMemoryLimit(-1) // reads the setting without changing it
	}
	soft := SoftMemoryLimit(limit)
	debug.SetMemoryLimit(soft)
	return soft
}

// DefaultSteadyGCPercent is the agent's GOGC after its first sync. An event allocates about what it
// changes (the sets it rebuilds), far less than the live heap of a cached cluster, so a low target
// keeps the agent's memory where the first sync left it instead of letting it grow by GOGC's share of
// the live heap, for some CPU per event (bench/MEMORY.md has both figures).
const DefaultSteadyGCPercent = 5

// returnFirstSyncMemory waits until ready passes (the first sync committed), then returns the
// memory that sync used to the operating system and sets the garbage collector's target to
// steadyGCPercent (0: unchanged). The first sync reads the whole cluster at once, a peak the agent
// does not reach again; without this the runtime keeps those pages, the RSS that the kubelet and the
// OOM killer see, for minutes after.
func returnFirstSyncMemory(ctx context.Context, ready func(*http.Request) error, steadyGCPercent int) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if ready(nil) != nil {
			continue
		}
		previous := -1
		if steadyGCPercent > 0 {
			previous = debug.SetGCPercent(steadyGCPercent)
		}
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		logf.FromContext(ctx).V(2).Info("Returned the memory of the first sync to the operating system",
			"heapAlloc", m.HeapAlloc, "heapReleased", m.HeapReleased, "sys", m.Sys, "gcPercent", steadyGCPercent, "previousGCPercent", previous)
		return
	}
}
