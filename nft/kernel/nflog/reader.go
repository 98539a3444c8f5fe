package nflog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// DefaultCopyRange copies the IP and transport headers of most packets and no more of their data.
const DefaultCopyRange = 128

// bindTimeout bounds the wait for the kernel's answer to the bind.
const bindTimeout = 5 * time.Second

// Options tune how the kernel hands records over; the zero value suits drop logging.
type Options struct {
	// CopyRange is how many bytes of each packet are copied, from the network header on; 0 means
	// DefaultCopyRange.
	CopyRange uint32
	// Batch is how many records the kernel gathers into one message; 0 means 1, each record is sent
	// at once.
	Batch uint32
	// FlushInterval bounds how long a partial batch waits; 0 means 10ms, the kernel's unit.
	FlushInterval time.Duration
	// ReadBuffer sets the socket's receive buffer in bytes; 0 keeps the system's default.
	ReadBuffer int
}

// Reader receives the records of one log group in one network namespace.
type Reader struct {
	conn  *netlink.Conn
	group uint16

	pending []netlink.Message // records that arrived before the bind was acknowledged
	nextSeq uint32            // the Seq expected next, once seenSeq
	seenSeq bool

	closed   atomic.Bool
	overruns atomic.Uint64
	lost     atomic.Uint64
}

// Open binds log group `group` in the network namespace at netnsPath ("" = the caller's): the
// packets of rules with `log group <group>` in that namespace are then queued for Read. Only one
// socket may bind a group: while one does, Open fails with EPERM, as it does without CAP_NET_ADMIN.
func Open(netnsPath string, group uint16, opts Options) (*Reader, error) {
	cfg := &netlink.Config{}
	if netnsPath != "" {
		f, err := os.Open(netnsPath)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	r := &Reader{conn: conn, group: group}
	if opts.ReadBuffer > 0 {
		if err := conn.SetReadBuffer(opts.ReadBuffer); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("setting the receive buffer of log group %d: %w", group, err)
		}
	}
	if err := r.bind(opts); err != nil {
		_ = conn.Close()
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("binding log group %d (bound by another socket, or no CAP_NET_ADMIN): %w", group, err)
		}
		return nil, fmt.Errorf("binding log group %d: %w", group, err)
	}
	return r, nil
}

// bind sends one configuration message and waits for its acknowledgement. The per-family
// NFULNL_CFG_CMD_PF_BIND/PF_UNBIND of older tools are not sent: they choose the namespace's
// default logger for `log` statements without a group, which nftables' `log group` does not use
// (it asks for nfnetlink_log by type), and unbinding would take that default away from others.
func (r *Reader) bind(opts Options) error {
	copyRange := opts.CopyRange
	if copyRange == 0 {
		copyRange = DefaultCopyRange
	}
	batch := max(opts.Batch, 1)
	// The flush timeout counts hundredths of a second; round up so that it is never 0 (no timer).
	timeout := max(uint32((opts.FlushInterval+10*time.Millisecond-1)/(10*time.Millisecond)), 1)

	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	// Create the group's instance, owned by this socket (EBUSY when another socket owns it).
	ae.Bytes(attrCfgCmd, []byte{cfgCmdBind})
	// Copy the packet's first copyRange bytes: its headers, not its data.
	mode := binary.BigEndian.AppendUint32(nil, copyRange)
	ae.Bytes(attrCfgMode, append(mode, copyPacket, 0))
	// Send once `batch` records are queued, or after `timeout` hundredths of a second.
	ae.Uint32(attrCfgQThresh, batch)
	ae.Uint32(attrCfgTimeout, timeout)
	// Number the records so that lost ones show as gaps.
	ae.Uint16(attrCfgFlags, cfgFlagSeq)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	sent, err := r.conn.Send(r.configMessage(netlink.Request|netlink.Acknowledge, attrs))
	if err != nil {
		return err
	}
	// Records may arrive before the acknowledgement: keep them for Read.
	if err := r.conn.SetReadDeadline(time.Now().Add(bindTimeout)); err != nil {
		return err
	}
	for {
		msgs, err := r.conn.Receive()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch {
			case m.Header.Type == netlink.Error && m.Header.Sequence == sent.Header.Sequence:
				return r.conn.SetReadDeadline(time.Time{})
			case m.Header.Type == packetMsgType:
				r.pending = append(r.pending, m)
			}
		}
	}
}

// configMessage is a NFULNL_MSG_CONFIG message for the reader's group.
func (r *Reader) configMessage(flags netlink.HeaderFlags, attrs []byte) netlink.Message {
	nfgen := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(nfgen[2:], r.group) // res_id: the group
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | msgConfig), Flags: flags},
		Data:   append(nfgen, attrs...),
	}
}

// Read calls handle with each record, in the order the kernel sent them, until ctx is done (it
// returns ctx's error) or the reader is closed (it returns nil). A receive buffer overrun, when the
// kernel had to drop records because handle kept up too slowly, is counted in Overruns and Read
// goes on. One Read at a time.
func (r *Reader) Read(ctx context.Context, handle func(Record)) error {
	// Clear the wake-up of a previous Read, then set one: a deadline in the past wakes the blocked
	// receive when ctx is done.
	if err := r.conn.SetReadDeadline(time.Time{}); err != nil && !r.closed.Load() {
		return fmt.Errorf("reading log group %d: %w", r.group, err)
	}
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = r.conn.SetReadDeadline(time.Unix(1, 0))
		close(woken)
	})
	defer func() {
		if !stop() { // the wake-up has started: let it finish before the next Read clears it
			<-woken
		}
	}()

	pending := r.pending
	r.pending = nil
	if err := r.deliver(pending, time.Now(), handle); err != nil {
		return err
	}
	for {
		msgs, err := r.conn.Receive()
		if err == nil {
			if err := r.deliver(msgs, time.Now(), handle); err != nil {
				return err
			}
			continue
		}
		switch {
		case r.closed.Load():
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, unix.ENOBUFS):
			r.overruns.Add(1)
		default:
			return fmt.Errorf("receiving records of log group %d: %w", r.group, err)
		}
	}
}

// deliver parses the packet messages among msgs, counts gaps in their numbers and hands them over.
func (r *Reader) deliver(msgs []netlink.Message, received time.Time, handle func(Record)) error {
	for _, m := range msgs {
		if m.Header.Type != packetMsgType {
			continue
		}
		rec, err := parseRecord(m, received)
		if err != nil {
			return fmt.Errorf("decoding a record of log group %d: %w", r.group, err)
		}
		if r.seenSeq && rec.Seq != r.nextSeq {
			r.lost.Add(uint64(rec.Seq - r.nextSeq)) // uint32 arithmetic wraps with the counter
		}
		r.nextSeq, r.seenSeq = rec.Seq+1, true
		handle(rec)
	}
	return nil
}

// Overruns counts the receive buffer overruns seen by Read: each one lost one or more records.
func (r *Reader) Overruns() uint64 { return r.overruns.Load() }

// Lost counts the records the kernel numbered that never reached Read (gaps in Record.Seq).
func (r *Reader) Lost() uint64 { return r.lost.Load() }

// Close unbinds the group and closes the socket; a blocked Read returns nil. The kernel would also
// drop the group's instance when the socket closes; the unbind says so explicitly.
func (r *Reader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(attrCfgCmd, []byte{cfgCmdUnbind})
	attrs, err := ae.Encode()
	if err == nil {
		_, err = r.conn.Send(r.configMessage(netlink.Request, attrs))
	}
	if err != nil {
		err = fmt.Errorf("unbinding log group %d: %w", r.group, err)
	}
	if cerr := r.conn.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing the socket of log group %d: %w", r.group, cerr))
	}
	return err
}
