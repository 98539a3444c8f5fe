// Package packet is measurement 3 of nftpolicy's benchmarks (issue 5): what a node's table costs per
// packet. Two lab pods on one node, a client and a server, are routed through the node while
// the node is programmed with one of five tables:
//
//   - conntrack-only (the baseline): one forward base chain, `ct state established,related accept`
//     and then `accept`, so that connection tracking is engaged but no policy is;
//   - nftpolicy's table for a cluster of P pods and no NetworkPolicy;
//   - A-10k: nftpolicy's table for the same cluster with N policies from the generator, the server
//     pod selected by as many policies as a typical isolated local pod, the client allowed;
//   - A-10k-log: A-10k with drop logging on (issue #18) for the lab pods' namespaces at level all,
//     with the agent's default limits, and an NFLOG reader draining the group for the whole run;
//   - B-10k: baseline B (one linear rule per pod, peer and port) for the same model.
//
// Every table lives on its own node namespace with its own two pods, programmed once; the workloads
// then run node after node, round after round (interleaved), so that drift of a shared machine hits
// every table alike. The workloads use blocking system calls on threads locked into the pods'
// namespaces (no Go network poller between the packets and the clock):
//
//   - connect-request-response-close (CRR): workers connect, send a small request, read the reply
//     and the server's close; new connections per second and connect() latency (the SYN's round
//     trip: its first packet is the one the policy judges);
//   - stream: one TCP connection writing for a fixed time; bytes per second at the server;
//   - UDP request/response: workers ping-pong small datagrams on one flow each; round trips per
//     second.
//
// Address plan: netlab's, node n (1..5) has the client at 198.18.n.1 and the server at 198.18.n.2;
// the generated cluster is in 10.0.0.0/10 (see test/bench/generator) and never overlaps.
package packet
