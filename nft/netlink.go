package nft

import (
	"fmt"
	"os"

	"github.com/google/nftables"
)

// NetlinkBackend runs transactions against the kernel through nf_tables netlink messages. Every
// operation of a transaction is queued on one nftables.Conn and sent with one Flush: the kernel applies
// a batch all-or-nothing, so a transaction that fails half-way leaves the table as it was.
type NetlinkBackend struct {
	netns *os.File // nil: the current network namespace
}

var _ Backend = (*NetlinkBackend)(nil)

// NewNetlinkBackend returns a backend for the network namespace at netnsPath (for example
// /run/netns/NAME or /proc/PID/ns/net); "" means the namespace of the calling process.
func NewNetlinkBackend(netnsPath string) (*NetlinkBackend, error) {
	if netnsPath == "" {
		return &NetlinkBackend{}, nil
	}
	f, err := os.Open(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
	}
	return &NetlinkBackend{netns: f}, nil
}

// Close releases the namespace handle.
func (b *NetlinkBackend) Close() error {
	if b.netns == nil {
		return nil
	}
	err := b.netns.Close()
	b.netns = nil
	return err
}

// Run lowers every operation of tx and applies them in one batch.
func (b *NetlinkBackend) Run(tx *Transaction) error {
	if len(tx.Ops) == 0 {
		return nil
	}
	var opts []nftables.ConnOption
	if b.netns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(b.netns.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("opening nftables connection: %w", err)
	}
	l := newLowering(conn, tx.Table)
	for i, op := range tx.Ops {
		if err := l.op(op); err != nil {
			return fmt.Errorf("lowering operation %d (%s): %w", i, renderOp(tx.Table, op), err)
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("committing %d operations on table inet %s: %w", len(tx.Ops), tx.Table, err)
	}
	return nil
}
