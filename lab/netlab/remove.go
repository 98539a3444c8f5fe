package netlab

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
)

// takePodNumber returns the p of the next pod's addresses: a number a removed pod gave back, else the
// next unused one.
func (n *Node) takePodNumber() (int, error) {
	n.lab.mu.Lock()
	defer n.lab.mu.Unlock()
	if len(n.free) > 0 {
		p := n.free[0]
		n.free = n.free[1:]
		return p, nil
	}
	if n.pods >= 254 {
		return 0, errors.New("too many pods on node")
	}
	n.pods++
	return n.pods, nil
}

// RemovePod deletes the pod's veth and namespace and gives its addresses back, so that a later AddPod
// on this node reuses them (as a real node reuses the IPs of deleted pods). Servers in the pod must
// be closed first: a socket keeps the namespace alive after its name is gone.
func (n *Node) RemovePod(pod *Pod) error {
	if pod.Node != n {
		return fmt.Errorf("removing pod %s: it is not on node %d", pod.Name, n.Index)
	}
	// Deleting the node side deletes both ends and the host routes at once; waiting for the kernel to
	// free the namespace would leave the interface name taken for a while.
	err := n.Do(func() error {
		link, err := netlink.LinkByName(pod.HostIfname)
		if err != nil {
			var notFound netlink.LinkNotFoundError
			if errors.As(err, &notFound) {
				return nil
			}
			return err
		}
		return netlink.LinkDel(link)
	})
	if err != nil {
		return fmt.Errorf("deleting veth %s of pod %s: %w", pod.HostIfname, pod.Name, err)
	}
	if err := pod.Delete(); err != nil {
		return err
	}
	l := n.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	l.netnss = slices.DeleteFunc(l.netnss, func(ns *Netns) bool { return ns.Name == pod.Name })
	l.pods = slices.DeleteFunc(l.pods, func(p *Pod) bool { return p == pod })
	n.free = append(n.free, int(pod.IPv4.As4()[3]))
	return nil
}
