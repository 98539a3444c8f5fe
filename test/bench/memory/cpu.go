package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on every Linux architecture
// (what sysconf(_SC_CLK_TCK) returns; Prometheus' process collector assumes it too).
const userHZ = 100

// CPUTime is CPU time in seconds (or seconds per second, for a rate), split as the kernel accounts it.
type CPUTime struct {
	User   float64 `json:"user"`
	System float64 `json:"system"`
}

// Total is user plus system time.
func (c CPUTime) Total() float64 { return c.User + c.System }

func (c CPUTime) minus(o CPUTime) CPUTime {
	return CPUTime{User: c.User - o.User, System: c.System - o.System}
}

func (c CPUTime) plus(o CPUTime) CPUTime {
	return CPUTime{User: c.User + o.User, System: c.System + o.System}
}

func (c CPUTime) times(f float64) CPUTime { return CPUTime{User: c.User * f, System: c.System * f} }

// atLeastZero clamps each part at zero: a rate or a cost measured over a short window can come out
// below zero once something measured elsewhere is subtracted.
func (c CPUTime) atLeastZero() CPUTime {
	return CPUTime{User: max(0, c.User), System: max(0, c.System)}
}

// EventCPU is the CPU time a process spent per event over a window.
type EventCPU struct {
	// Raw is the growth of the process's CPU time over the window divided by the events.
	Raw CPUTime `json:"raw"`
	// Net subtracts first what the process spends besides the events over the same time: the
	// harness's metrics scrapes in the window, at their cost measured at idle, and the idle CPU rate.
	Net CPUTime `json:"net"`
}

// cpuPerEvent is the CPU time per event between the samples before and after, which scrapes metrics
// scrapes and events events lie between; idle holds the process's idle figures. Nil when the samples
// or the idle figures have no CPU times (runs recorded before they were measured).
func cpuPerEvent(before, after Memory, idle IdleFigures, scrapes, events int) *EventCPU {
	if events <= 0 || before.CPU == nil || after.CPU == nil || idle.CPUPerSecond == nil || idle.ScrapeCPU == nil {
		return nil
	}
	growth := after.CPU.minus(*before.CPU)
	background := idle.ScrapeCPU.times(float64(scrapes)).plus(idle.CPUPerSecond.times(after.AtSeconds - before.AtSeconds))
	return &EventCPU{Raw: growth.times(1 / float64(events)), Net: growth.minus(background).times(1 / float64(events))}
}

// procCPU reads the CPU time of process pid, all its threads, from /proc/PID/stat.
func procCPU(pid int) (CPUTime, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPUTime{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads utime and stime, fields 14 and 15 of a /proc/PID/stat line (proc(5)). The
// second field, the command's name in parentheses, may hold spaces and parentheses itself: the
// fields are counted from the last ')'.
func parseProcStat(stat string) (CPUTime, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return CPUTime{}, fmt.Errorf("reading %q: no command name", stat)
	}
	fields := strings.Fields(stat[end+1:]) // from field 3, state
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return CPUTime{}, fmt.Errorf("reading %q: %d fields after the command name", stat, len(fields))
	}
	user, err1 := strconv.ParseUint(fields[utime], 10, 64)
	system, err2 := strconv.ParseUint(fields[stime], 10, 64)
	if err1 != nil || err2 != nil {
		return CPUTime{}, fmt.Errorf("reading utime and stime of %q", stat)
	}
	return CPUTime{User: float64(user) / userHZ, System: float64(system) / userHZ}, nil
}

// cpuText renders c, seconds per event, as milliseconds with its split.
func cpuText(c CPUTime) string {
	return fmt.Sprintf("%.2f ms (user %.2f, system %.2f)", 1000*c.Total(), 1000*c.User, 1000*c.System)
}

// cpuCell renders the net or raw milliseconds per event of e for a table, "-" when not measured.
func cpuCell(e *EventCPU, net bool) string {
	if e == nil {
		return "-"
	}
	c := e.Raw
	if net {
		c = e.Net
	}
	return fmt.Sprintf("%.2f", 1000*c.Total())
}
