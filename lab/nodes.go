package lab

import (
	"fmt"
)

// NodeNames lists the lab's nodes in order.
func (l *Lab) NodeNames() []string {
	names := make([]string, len(l.nodes))
	for i, n := range l.nodes {
		names[i] = n.name
	}
	return names
}

// NodeNetns is the path of the node's network namespace, where its agent programs its table.
func (l *Lab) NodeNetns(nodeName string) (string, error) {
	n, err := l.node(nodeName)
	if err != nil {
		return "", err
	}
	return n.net.Path, nil
}

// NodeOf names the node a pod ("namespace/name") runs on.
func (l *Lab) NodeOf(pod string) (string, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	p, ok := l.pods[pod]
	if !ok {
		return "", fmt.Errorf("no pod %s in the lab", pod)
	}
	return p.node.name, nil
}

func (l *Lab) node(name string) (*node, error) {
	for _, n := range l.nodes {
		if n.name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %s in the lab", name)
}
