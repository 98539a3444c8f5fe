package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel reads a whole nf_tables batch from one sendmsg, so the socket's send buffer must hold the
// largest transaction we send (a full replacement of a table with every peer of a large cluster). The
// *FORCE options lift the sysctl caps (net.core.wmem_max), as the nft tool does; they need
// CAP_NET_ADMIN, which programming nftables needs anyway. These are limits, not allocations.
const (
	sendBufferBytes    = 256 << 20
	receiveBufferBytes = 16 << 20
)

// NetlinkBackend runs transactions against the kernel through nf_tables netlink messages. Every
// operation of a transaction is queued on one nftables.Conn and sent with one Flush: the kernel applies
// a batch all-or-nothing, so a transaction that fails half-way leaves the table as it was.
//
// The netlink socket lives as long as the backend: closing an nf_tables socket after a commit that
// deleted objects makes the kernel finish releasing them inside close(), about one RCU grace period,
// which would otherwise be paid by every transaction.
type NetlinkBackend struct {
	mu        sync.Mutex
	netns     *os.File           // nil: the current network namespace
	conn      *nftables.Conn     // the lasting connection; nil until first used or after a failure
	anonymous *anonymousSetNames // names for the anonymous sets of rules, unique for the backend's life

	watch *TableWatch // the watch of our table, if one runs: full replacements run quietly (see quietly)

	portsMu sync.Mutex
	ports   []uint32 // netlink ports of every connection the backend opened: its batches' senders
}

var _ nft.Backend = (*NetlinkBackend)(nil)

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
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropConn()
	if b.netns == nil {
		return nil
	}
	err := b.netns.Close()
	b.netns = nil
	return err
}

// connection returns the lasting connection, opening it on first use.
func (b *NetlinkBackend) connection() (*nftables.Conn, error) {
	if b.conn != nil {
		return b.conn, nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		b.addPort(c.PID())
		return largeBuffers(c)
	})}
	if b.netns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(b.netns.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("opening nftables connection: %w", err)
	}
	b.conn = conn
	return conn, nil
}

// addPort remembers the port of a new connection. Ports are kept for the backend's life, a few per
// failure, so that a watch still knows the batches of a connection dropped since as ours.
func (b *NetlinkBackend) addPort(port uint32) {
	b.portsMu.Lock()
	defer b.portsMu.Unlock()
	b.ports = append(b.ports, port)
}

// ownsPort reports whether port is one of the backend's connections.
func (b *NetlinkBackend) ownsPort(port uint32) bool {
	b.portsMu.Lock()
	defer b.portsMu.Unlock()
	return slices.Contains(b.ports, port)
}

// netnsFd is the namespace's descriptor, or -1 for the calling process's namespace.
func (b *NetlinkBackend) netnsFd() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.netns == nil {
		return -1
	}
	return int(b.netns.Fd())
}

// dropConn closes the connection, so that nothing queued on it by a failed transaction can leak into
// the next one; the next Run opens a fresh one.
func (b *NetlinkBackend) dropConn() {
	if b.conn != nil {
		_ = b.conn.CloseLasting()
		b.conn = nil
	}
}

// Run lowers every operation of tx and applies them in one batch.
func (b *NetlinkBackend) Run(tx *nft.Transaction) error {
	if len(tx.Ops) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.connection()
	if err != nil {
		return err
	}
	if b.anonymous == nil {
		b.anonymous = newAnonymousSetNames()
	}
	if err := newLowering(conn, tx.Table, b.anonymous).transaction(tx); err != nil {
		b.dropConn()
		return err
	}
	commit := func() error {
		if err := conn.Flush(); err != nil {
			b.dropConn()
			return fmt.Errorf("committing %d operations on table inet %s: %w", len(tx.Ops), tx.Table, err)
		}
		return nil
	}
	if b.watch != nil && b.watch.table == tx.Table && replacesTable(tx) {
		return b.watch.quietly(commit)
	}
	return commit()
}

// replacesTable reports whether tx deletes our table, as a full replacement does.
func replacesTable(tx *nft.Transaction) bool {
	for _, op := range tx.Ops {
		if _, ok := op.(nft.DeleteTable); ok {
			return true
		}
	}
	return false
}

// largeBuffers raises the socket's buffer limits so that a large batch fits in one message and the
// kernel's acknowledgements of it fit in the receive queue.
func largeBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("reaching the netlink socket: %w", err)
	}
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		if sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBufferBytes); sockErr != nil {
			sockErr = fmt.Errorf("raising the netlink send buffer: %w", sockErr)
			return
		}
		if sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBufferBytes); sockErr != nil {
			sockErr = fmt.Errorf("raising the netlink receive buffer: %w", sockErr)
		}
	})
	if err != nil {
		return fmt.Errorf("reaching the netlink socket: %w", err)
	}
	return sockErr
}
