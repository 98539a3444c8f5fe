package baselines

import (
	"bytes"
	"fmt"
	"os/exec"
	"time"
)

// IPTablesSyncer runs baseline C's full syncs inside one named network namespace.
type IPTablesSyncer struct {
	Netns string // name under /run/netns, for `ip netns exec`
	// Restore is the iptables-restore binary: "iptables-restore" (Debian's default, the nf_tables
	// variant) or "iptables-legacy-restore".
	Restore  string
	previous *IPTables
}

// SyncResult is what one full sync sent and how long it took.
type SyncResult struct {
	Duration    time.Duration
	IPSetBytes  int // `ipset restore` input, destroys of stale sets included
	FilterBytes int // iptables-restore input
}

// Bytes is everything the sync wrote to the two tools.
func (r SyncResult) Bytes() int { return r.IPSetBytes + r.FilterBytes }

// Sync programs c as kube-router does on every change: ipset restore, iptables-restore, then the
// destruction of sets nothing refers to any more. The duration covers the three commands, process
// start-up included.
func (s *IPTablesSyncer) Sync(c *IPTables) (SyncResult, error) {
	sets, filter, stale := c.IPSetRestore(), c.FilterRestore(), c.DestroyRestore(s.previous)
	res := SyncResult{IPSetBytes: len(sets) + len(stale), FilterBytes: len(filter)}
	start := time.Now()
	if err := s.run(sets, "ipset", "restore"); err != nil {
		return res, err
	}
	restore := s.Restore
	if restore == "" {
		restore = "iptables-restore"
	}
	if err := s.run(filter, restore); err != nil {
		return res, err
	}
	if stale != "" {
		if err := s.run(stale, "ipset", "restore"); err != nil {
			return res, err
		}
	}
	res.Duration = time.Since(start)
	s.previous = c
	return res, nil
}

func (s *IPTablesSyncer) run(stdin string, command ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.Netns}, command...)...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %v in %s: %w: %s", command, s.Netns, err, stderr.Bytes())
	}
	return nil
}
