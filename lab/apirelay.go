package lab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// apiRelay makes the API server, which listens on the host's loopback, reachable at the same address
// on the loopback of a node's namespace, where kube-proxy runs: the lab listens there and copies each
// connection to the API server, bytes only (TLS stays end to end, and the API server's certificate
// names that address). Nothing is added to the host's network namespace.
type apiRelay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startAPIRelay listens on addr (host:port) inside ns and relays every connection to addr in the
// lab's own namespace.
func startAPIRelay(ns netlab.Netns, addr string) (*apiRelay, error) {
	r := &apiRelay{target: addr, conns: map[net.Conn]struct{}{}}
	err := ns.Do(func() error {
		var err error
		r.ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("relaying the API server into %s: %w", ns.Name, err)
	}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *apiRelay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			in.Close()
			continue
		}
		if !r.track(in, out) {
			return
		}
		r.wg.Add(2)
		go r.pipe(in, out)
		go r.pipe(out, in)
	}
}

// track registers a relayed pair for Close; false when Close already ran (the pair is closed).
func (r *apiRelay) track(conns ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		r.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst; when src ends, both ends of this pair are closed.
func (r *apiRelay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range []net.Conn{dst, src} {
		c.Close()
		delete(r.conns, c)
	}
}

// Close stops listening, closes every relayed connection and waits for the relay's goroutines.
func (r *apiRelay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
