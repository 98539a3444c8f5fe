// Command nftpolicy-lab runs a NetworkPolicy lab on one machine: a real kube-apiserver and etcd,
// network namespaces for nodes and pods, and one nftpolicy agent per node (the nftpolicy binary
// beside this one, or --agent). It is a developer tool, built apart from the agent so that the
// DaemonSet's image carries none of it.
//
//	nftpolicy-lab up|down|apply|probe|matrix|scenario|demo [flags]
package main

import (
	"os"

	"github.com/nftpolicy/nftpolicy/lab"
)

func main() {
	os.Exit(lab.Main(os.Args[1:]))
}
