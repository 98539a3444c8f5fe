package baselines

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ProgramNaive replaces baseline B's table in the network namespace at netnsPath with n, in one
// netlink batch (add, delete, re-create the table, then every chain and rule), as nftpolicy's applier
// does for a full replacement.
func ProgramNaive(netnsPath string, n *Naive) error {
	ns, err := os.Open(netnsPath)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())), nftables.WithSockOptions(largeBuffers))
	if err != nil {
		return fmt.Errorf("opening nftables connection: %w", err)
	}
	table := &nftables.Table{Name: NaiveTable, Family: nftables.TableFamilyINet}
	conn.AddTable(table)
	conn.DelTable(table)
	conn.AddTable(table)
	accept := nftables.ChainPolicyAccept
	chain := func(name string, hook *nftables.ChainHook, prio int32) *nftables.Chain {
		return conn.AddChain(&nftables.Chain{
			Name: name, Table: table, Type: nftables.ChainTypeFilter, Hooknum: hook,
			Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityFilter + nftables.ChainPriority(prio)), Policy: &accept,
		})
	}
	// A base chain cannot be a jump target: both egress hooks jump to one regular chain.
	egressForward := chain("egress-forward", nftables.ChainHookForward, 0)
	egressInput := chain("egress-input", nftables.ChainHookInput, 0)
	ingress := chain("ingress", nftables.ChainHookForward, 10)
	egress := conn.AddChain(&nftables.Chain{Name: "egress", Table: table})
	for _, base := range []*nftables.Chain{egressForward, egressInput} {
		conn.AddRule(&nftables.Rule{Table: table, Chain: base, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "egress"}}})
	}
	for _, c := range []struct {
		chain *nftables.Chain
		rules []NaiveRule
	}{{egress, n.Egress}, {ingress, n.Ingress}} {
		conn.AddRule(&nftables.Rule{Table: table, Chain: c.chain, Exprs: establishedAccept()})
		for _, r := range c.rules {
			conn.AddRule(&nftables.Rule{Table: table, Chain: c.chain, Exprs: r.exprs()})
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("programming table %s (%d rules): %w", NaiveTable, n.Rules(), err)
	}
	return nil
}

// Header offsets: IPv4 source and destination address, transport destination port.
const (
	ipv4SaddrOffset = 12
	ipv4DaddrOffset = 16
	dportOffset     = 2
)

// exprs lowers a rule as nft does, with the implicit `meta nfproto ipv4` dependency of `ip` matches
// in an inet table.
func (r NaiveRule) exprs() []expr.Any {
	podOffset, peerOffset := uint32(ipv4DaddrOffset), uint32(ipv4SaddrOffset)
	if r.PeerIsDest {
		podOffset, peerOffset = ipv4SaddrOffset, ipv4DaddrOffset
	}
	pod := r.Pod.As4()
	es := []expr.Any{
		// meta nfproto ipv4
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		// ip daddr POD
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: podOffset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: pod[:]},
	}
	if r.Peer != nil {
		from, to := r.Peer.From.As4(), r.Peer.To.As4()
		es = append(es, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: peerOffset, Len: 4})
		if from == to {
			// ip saddr PEER
			es = append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: from[:]})
		} else {
			// ip saddr FIRST-LAST
			es = append(es, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: from[:], ToData: to[:]})
		}
	}
	if r.Proto != 0 {
		// meta l4proto P
		es = append(es, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.Proto}})
		if r.FirstPort != 0 || r.LastPort != 0 {
			es = append(es, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: dportOffset, Len: 2})
			if r.FirstPort == r.LastPort {
				// th dport N
				es = append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(r.FirstPort)})
			} else {
				// th dport FIRST-LAST
				es = append(es, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: port(r.FirstPort), ToData: port(r.LastPort)})
			}
		}
	}
	kind := expr.VerdictAccept
	if r.Drop {
		kind = expr.VerdictDrop
	}
	return append(es, &expr.Verdict{Kind: kind})
}

// establishedAccept: ct state established,related accept
func establishedAccept() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

func port(p uint16) []byte { return []byte{byte(p >> 8), byte(p)} }

// largeBuffers lets a batch of hundreds of thousands of rules fit one message, as nftpolicy's backend
// does for its own batches.
func largeBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("reaching the netlink socket: %w", err)
	}
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		if sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<30); sockErr == nil {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<30)
		}
	})
	if err != nil {
		return err
	}
	return sockErr
}
