package netlab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
)

// Forwarder relays TCP connections accepted inside a namespace to an address reached from the
// caller's namespace.
type Forwarder struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// ForwardTCP listens on listen inside the namespace and relays every connection to target, dialled
// from the namespace of the calling process. It lets a process in a node namespace reach a server on
// the host's loopback (the lab's API server) at the same address and port, so the server's
// certificate still matches, without touching the host's interfaces.
func (n *Netns) ForwardTCP(listen netip.AddrPort, target string) (*Forwarder, error) {
	f := &Forwarder{target: target, conns: map[net.Conn]struct{}{}}
	err := n.Do(func() error {
		var err error
		f.ln, err = net.Listen("tcp", listen.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s in %s: %w", listen, n.Name, err)
	}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

// relay copies both ways until either side closes.
func (f *Forwarder) relay(in net.Conn) {
	defer f.wg.Done()
	out, err := net.Dial("tcp", f.target)
	if err != nil {
		_ = in.Close()
		return
	}
	if !f.track(in, out) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	f.untrack(in, out)
}

// track records open connections so that Close can end them; it refuses once Close has begun.
func (f *Forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *Forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(f.conns, c)
	}
}

// Close stops listening, ends every relayed connection and waits for the relays to finish.
func (f *Forwarder) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
	return err
}
