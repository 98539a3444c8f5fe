// Package baselines holds the two layouts nftpolicy's benchmarks compare against. Neither is part of
// nftpolicy; both take the same resolved selectors.Model as nftpolicy's compiler and mean the same
// thing (same-node traffic passes the source pod's egress rules and then the destination pod's ingress
// rules; replies of allowed connections pass), but they program it the way simpler enforcers do:
//
//   - Baseline B (Naive): nftables without sets or verdict maps: one linear rule per (local pod, peer
//     address or range, port) in one chain per direction, programmed in one netlink batch through
//     github.com/google/nftables, like nftpolicy.
//   - Baseline C (IPTables): iptables and ipset in the style of kube-router: a chain per isolated pod
//     and direction, one ipset per peer set (hash:ip, hash:net, hash:ip,port for named ports), and
//     every sync a full `ipset restore` (create a temporary set, fill it, swap it in) followed by a
//     full `iptables-restore` of the filter table, run inside the node's namespace with `ip netns exec`.
//
// Both handle IPv4 only, which is what the generator produces.
package baselines
