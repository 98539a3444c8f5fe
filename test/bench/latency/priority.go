package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// reniceSelf gives every thread of this process the nice value nice. On Linux a nice value belongs to
// a thread, and new threads inherit their creator's, so the processes the lab started before (API
// server, etcd, agents) keep theirs while the probe loop, the instrument, is not starved by them on a
// small machine.
func reniceSelf(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("setting the nice value of thread %d: %w", tid, err)
		}
	}
	return nil
}

// conntrackCount reads how many connections the namespace's conntrack table holds: the agent's
// post-commit cleanup dumps them all.
func conntrackCount() (int, error) {
	data, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(trimNewline(data)))
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
