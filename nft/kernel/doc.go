// Package kernel is where nftpolicy's table meets the kernel: it lowers nft transactions to
// github.com/google/nftables netlink messages (one batch per transaction), and holds the netlink
// implementations of nft's seams: the Backend, the conntrack cleaner and the interface resolver.
// Everything it programs is decided in package nft, which has no kernel in it.
package kernel
