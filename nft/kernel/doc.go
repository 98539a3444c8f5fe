// Package kernel is where nftpolicy's table meets the kernel: it lowers nft transactions to
// github.com/google/nftables netlink messages (one batch per transaction), and holds the netlink
// implementations of nft's seams: the Backend, the conntrack cleaner and the interface resolver.
// Everything it programs is decided in package nft, which has no kernel in it. The way back is here
// too: ReadRuleset raises the kernel's table into nft's model, the exact inverse of the lowering, so
// that nft's tracer can explain a packet through what the kernel holds.
package kernel
