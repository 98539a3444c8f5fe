package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// monitorReceiveBufferBytes holds the notifications of a large commit of ours; past it the kernel
// drops notifications and says so (ENOBUFS), which the watch reports as lost.
const monitorReceiveBufferBytes = 64 << 20

// monitorRetry is how long a watch waits before opening its socket again after it failed.
const monitorRetry = time.Second

// TableWatch reports the changes to one table made by anyone but its backend, from nf_tables'
// notifications in the backend's network namespace.
//
// Each notification carries the netlink port of the socket whose batch caused it; the backend knows
// the ports of its own connections, so a batch is foreign when it touched our table from another
// port. google/nftables' Monitor is not used: it decodes every expression of every notification,
// and drops the table of set element notifications, without which a change to another program's
// table cannot be told from a change to ours.
type TableWatch struct {
	backend *NetlinkBackend
	netns   int // the namespace's descriptor, -1 for the process's own
	table   string
	events  chan nft.ForeignChange

	mu     sync.Mutex
	conn   *netlink.Conn
	closed bool
	done   chan struct{}
}

// Watch starts watching table in the backend's namespace. The channel gets an event after every
// foreign batch that touched the table, and whenever notifications may have been lost (then only a
// read-back can tell whether the table changed). Events are coalesced while the reader is busy.
func (b *NetlinkBackend) Watch(table string) (*TableWatch, error) {
	w := &TableWatch{backend: b, netns: b.netnsFd(), table: table, events: make(chan nft.ForeignChange, 1), done: make(chan struct{})}
	conn, err := w.open()
	if err != nil {
		return nil, err
	}
	w.conn = conn
	go w.run(conn)
	b.mu.Lock()
	b.watch = w
	b.mu.Unlock()
	return w, nil
}

// Events returns the channel of foreign changes. It is closed by Close.
func (w *TableWatch) Events() <-chan nft.ForeignChange { return w.events }

// Close stops the watch.
func (w *TableWatch) Close() {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	conn := w.conn
	w.mu.Unlock()
	if already {
		return
	}
	w.backend.mu.Lock()
	if w.backend.watch == w {
		w.backend.watch = nil
	}
	w.backend.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
	<-w.done
}

// open subscribes a new socket in the backend's namespace to nf_tables notifications.
func (w *TableWatch) open() (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if w.netns >= 0 {
		cfg.NetNS = w.netns
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket for nf_tables notifications: %w", err)
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("subscribing to nf_tables notifications: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err == nil {
		_ = raw.Control(func(fd uintptr) {
			// Best effort: a smaller buffer only makes losses, which are reported, likelier.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, monitorReceiveBufferBytes)
		})
	}
	return conn, nil
}

// quietly runs commit, one of the backend's own full replacements, with the watch unsubscribed.
// Once anyone listens, the kernel builds a notification for every element of a batch, and a full
// replacement of a large table has tens of thousands: listening would cost several times the
// commit. Nothing is missed: a foreign change before the commit is undone by it (it deletes and
// recreates the table), and the kernel's generation, which every commit in the namespace advances,
// tells whether anything committed besides it while the watch was away (reported as lost news).
func (w *TableWatch) quietly(commit func() error) error {
	w.mu.Lock()
	conn := w.conn
	if w.closed {
		conn = nil
	}
	w.mu.Unlock()
	if conn == nil || conn.LeaveGroup(unix.NFNLGRP_NFTABLES) != nil {
		return commit()
	}
	before, errBefore := w.generation()
	err := commit()
	errJoin := conn.JoinGroup(unix.NFNLGRP_NFTABLES)
	after, errAfter := w.generation()
	want := before
	if err == nil {
		want++
	}
	switch {
	case errJoin != nil:
		// The run loop opens another socket, and reports the loss then.
		_ = conn.Close()
	case errBefore != nil || errAfter != nil || after != want:
		w.send(nft.ForeignChange{At: time.Now(), Lost: true, Detail: fmt.Sprintf(
			"nf_tables generation went from %d to %d over our full replacement, unwatched", before, after)})
	}
	return err
}

// generation asks the kernel for the namespace's ruleset generation.
func (w *TableWatch) generation() (uint32, error) {
	conn, err := dialNetfilter(w.netns)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	return generation(conn)
}

func (w *TableWatch) run(conn *netlink.Conn) {
	defer close(w.done)
	defer close(w.events)
	var batch batchSeen
	for {
		msgs, err := conn.Receive()
		if err != nil {
			if w.isClosed() {
				return
			}
			// ENOBUFS: the kernel dropped notifications. Anything else: the socket is gone; open
			// another. Either way a foreign change may have been missed.
			w.send(nft.ForeignChange{At: time.Now(), Lost: true, Detail: fmt.Sprintf("nf_tables notifications lost: %v", err)})
			batch = batchSeen{}
			if errors.Is(err, unix.ENOBUFS) {
				continue
			}
			_ = conn.Close()
			if conn = w.reopen(); conn == nil {
				return
			}
			continue
		}
		for _, m := range msgs {
			if ev, ok := batch.add(m, w.table, w.backend.ownsPort); ok {
				w.send(ev)
			}
		}
	}
}

// reopen opens a new socket after a failure, retrying until it works or the watch is closed.
func (w *TableWatch) reopen() *netlink.Conn {
	for {
		time.Sleep(monitorRetry)
		if w.isClosed() {
			return nil
		}
		conn, err := w.open()
		if err != nil {
			continue
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			_ = conn.Close()
			return nil
		}
		w.conn = conn
		w.mu.Unlock()
		// Changes made while no socket listened are unknown.
		w.send(nft.ForeignChange{At: time.Now(), Lost: true, Detail: "nf_tables notifications resubscribed"})
		return conn
	}
}

func (w *TableWatch) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// send delivers ev, or merges it into the event the reader has not taken yet.
func (w *TableWatch) send(ev nft.ForeignChange) {
	for {
		select {
		case w.events <- ev:
			return
		default:
		}
		select {
		case old := <-w.events:
			ev = old.Merge(ev)
		default:
		}
	}
}

// batchSeen follows the notifications of one batch, which end with NFT_MSG_NEWGEN.
type batchSeen struct {
	foreign bool
	what    string // the first foreign notification on our table
}

// add takes one notification and returns an event when it ends a batch that changed our table from
// a port that is not ours.
func (b *batchSeen) add(m netlink.Message, table string, own func(uint32) bool) (nft.ForeignChange, bool) {
	if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
		return nft.ForeignChange{}, false
	}
	kind := int(m.Header.Type & 0xff)
	if kind == unix.NFT_MSG_NEWGEN {
		done := *b
		*b = batchSeen{}
		if !done.foreign {
			return nft.ForeignChange{}, false
		}
		return nft.ForeignChange{At: time.Now(), Detail: done.what + " by " + committer(m)}, true
	}
	// nfgenmsg (family, version, resource id), then attributes; the first attribute of every object
	// message is the name of its table.
	if b.foreign || m.Data[0] != unix.NFPROTO_INET || own(m.Header.PID) {
		return nft.ForeignChange{}, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return nft.ForeignChange{}, false
	}
	for ad.Next() {
		if ad.Type() == 1 { // NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,SET_ELEM_LIST_TABLE,OBJ_TABLE}
			if ad.String() == table {
				b.foreign, b.what = true, notificationNames[kind]
				if b.what == "" {
					b.what = fmt.Sprintf("nf_tables message %d", kind)
				}
			}
			break
		}
	}
	return nft.ForeignChange{}, false
}

// committer names the process that committed a batch, from its NFT_MSG_NEWGEN notification.
func committer(m netlink.Message) string {
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return "another process"
	}
	ad.ByteOrder = binary.BigEndian
	var pid uint32
	var name string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_PROC_PID:
			pid = ad.Uint32()
		case unix.NFTA_GEN_PROC_NAME:
			name = ad.String()
		}
	}
	if pid == 0 {
		return "another process"
	}
	if pid == uint32(os.Getpid()) {
		return fmt.Sprintf("another socket of this process (pid %d)", pid)
	}
	return fmt.Sprintf("%s (pid %d)", name, pid)
}

var notificationNames = map[int]string{
	unix.NFT_MSG_NEWTABLE:   "table added",
	unix.NFT_MSG_DELTABLE:   "table deleted",
	unix.NFT_MSG_NEWCHAIN:   "chain added",
	unix.NFT_MSG_DELCHAIN:   "chain deleted",
	unix.NFT_MSG_NEWRULE:    "rule added",
	unix.NFT_MSG_DELRULE:    "rule deleted",
	unix.NFT_MSG_NEWSET:     "set added",
	unix.NFT_MSG_DELSET:     "set deleted",
	unix.NFT_MSG_NEWSETELEM: "set element added",
	unix.NFT_MSG_DELSETELEM: "set element deleted",
	unix.NFT_MSG_NEWOBJ:     "object added",
	unix.NFT_MSG_DELOBJ:     "object deleted",
}
