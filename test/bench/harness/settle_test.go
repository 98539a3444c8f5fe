package harness

import (
	"testing"
	"time"
)

func TestCPUTimesAdvance(t *testing.T) {
	busy0, total0, ok := cpuTimes()
	if !ok {
		t.Skip("no /proc/stat")
	}
	time.Sleep(50 * time.Millisecond)
	busy1, total1, ok := cpuTimes()
	if !ok || busy0 > total0 || busy1 > total1 || total1 <= total0 || busy1 < busy0 {
		t.Fatalf("cpu times: busy %d -> %d, total %d -> %d", busy0, busy1, total0, total1)
	}
}

func TestSettleKernelIsBounded(t *testing.T) {
	if d := settleKernel(); d > settleMax+time.Second {
		t.Fatalf("settleKernel waited %s, more than its bound %s", d, settleMax)
	}
}
