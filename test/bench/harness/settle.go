package harness

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

// Bounds of settleKernel: the machine counts as quiet when at most quietShare of its CPU time went
// to anything but idle over quietWindow, twice in a row; it waits at most settleMax.
const (
	quietWindow = 100 * time.Millisecond
	quietShare  = 0.15
	settleMax   = 10 * time.Second
)

// settleKernel waits until the machine is quiet before a timed programming. Deleting a namespace
// returns at once, but the kernel frees its tables, sets and ipsets afterwards in a worker, for a
// time that grows with the cluster: a backend timed right after another backend's namespace went
// away would pay for that teardown, more at larger P (which skews the growth ratio). It returns how
// long it waited; a machine that never quiets down costs settleMax, and the measurement goes on.
func settleKernel() time.Duration {
	start := time.Now()
	quiet := 0
	prevBusy, prevTotal, ok := cpuTimes()
	for ok && quiet < 2 && time.Since(start) < settleMax {
		time.Sleep(quietWindow)
		busy, total, ok2 := cpuTimes()
		if !ok2 || total <= prevTotal {
			break
		}
		if float64(busy-prevBusy)/float64(total-prevTotal) <= quietShare {
			quiet++
		} else {
			quiet = 0
		}
		prevBusy, prevTotal = busy, total
	}
	return time.Since(start)
}

// cpuTimes returns the machine's busy and total CPU time in clock ticks, from /proc/stat.
func cpuTimes() (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, false
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total, true
}
