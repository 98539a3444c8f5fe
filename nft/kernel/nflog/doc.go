// Package nflog reads the packets that nftables' `log group N` statement hands to userspace through
// nfnetlink_log (NFLOG). It exists for drop logging: the kernel logs the first packet of a dropped
// connection, rate-limited by the rule itself, and the agent turns each record into one log line.
//
// Reader speaks nfnetlink_log directly over github.com/mdlayher/netlink, the project's netlink
// stack, in the network namespace it is given; DecodePacket reads just enough of each copied packet
// (addresses, protocol, ports, TCP flags, ICMP type) to name the connection. Records the kernel
// could not deliver because the reader fell behind are counted, never fatal. Fake stands in for
// Reader behind the Source interface in tests of what consumes records.
//
// The message layout is the kernel's uapi, include/uapi/linux/netfilter/nfnetlink_log.h.
package nflog
