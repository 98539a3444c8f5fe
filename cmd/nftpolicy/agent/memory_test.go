package agent

import (
	"context"
	"errors"
	"math"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"":          0,
		"0":         0,
		"256Mi":     256 << 20,
		"268435456": 256 << 20, // what the downward API gives for limits.memory
		"1G":        1e9,
	} {
		got, err := ParseMemoryLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1Mi", "256MB"} {
		if _, err := ParseMemoryLimit(in); err == nil {
			t.Errorf("ParseMemoryLimit(%q) accepted it", in)
		}
	}
}

func TestSetMemoryLimitLeavesHeadroomBelowTheContainers(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)

	if got, want := SetMemoryLimit(320<<20), int64(320<<20)/100*90; got != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("SetMemoryLimit(320Mi) = %d, runtime limit %d; want %d for both", got, debug.SetMemoryLimit(-1), want)
	}
	// 0 keeps whatever is in force (GOMEMLIMIT, or an earlier setting).
	if got := SetMemoryLimit(0); got != int64(320<<20)/100*90 {
		t.Errorf("SetMemoryLimit(0) changed the limit to %d", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if got := SetMemoryLimit(0); got != math.MaxInt64 {
		t.Errorf("SetMemoryLimit(0) without a limit = %d, want none (MaxInt64)", got)
	}
}

func TestReturnFirstSyncMemoryWaitsForTheFirstSync(t *testing.T) {
	var checks atomic.Int32
	ready := func(*http.Request) error {
		if checks.Add(1) < 3 {
			return errors.New("not synced yet")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	go func() {
		returnFirstSyncMemory(ctx, ready, 7)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("returnFirstSyncMemory did not return once ready")
	}
	if n := checks.Load(); n != 3 {
		t.Errorf("ready was checked %d times, want 3 (until it passed, then never again)", n)
	}
	if got := debug.SetGCPercent(100); got != 7 {
		t.Errorf("GC percent after the first sync = %d, want the steady 7", got)
	}
}

func TestReturnFirstSyncMemoryStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		returnFirstSyncMemory(ctx, func(*http.Request) error { return errors.New("never synced") }, 7)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("returnFirstSyncMemory outlived its context")
	}
}
