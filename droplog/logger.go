// Package droplog turns the records of the drop log rules (see nft.DropLog), read from their NFLOG
// group, into one JSON line per dropped flow: which drop point refused it, every policy isolating the
// pod there, and the pods at both ends when known. Records of one flow within a window are merged
// into one line with a count; what is merged or cannot be held is counted as suppressed.
package droplog

import (
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
)

// Entry is one JSON line: the records of one flow at one drop point within one window.
type Entry struct {
	First     time.Time `json:"time"`
	Last      time.Time `json:"last"`
	Count     int       `json:"count"`
	Node      string    `json:"node"`
	Direction string    `json:"direction,omitempty"`
	Verdict   string    `json:"verdict"`
	Reason    string    `json:"reason"`
	// Pod is the isolated pod whose default deny dropped the flow ("namespace/name").
	Pod string `json:"pod,omitempty"`
	// Policies are every policy isolating Pod in Direction: a default deny has no single policy. For
	// an allowed connection, the one policy whose rule (Rule, its index in the direction's list)
	// admitted it. For a would-drop, every audited policy isolating Pod; for a would-allow, the
	// audited policy that would admit it.
	Policies []string `json:"policies,omitempty"`
	Rule     *int     `json:"rule,omitempty"`
	Src      Endpoint `json:"src"`
	Dst      Endpoint `json:"dst"`
	Protocol string   `json:"protocol"`
}

// Endpoint is one end of a flow; Port is the first record's (0 when the protocol has none).
type Endpoint struct {
	IP        netip.Addr `json:"ip"`
	Port      uint16     `json:"port,omitempty"`
	Pod       string     `json:"pod,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
}

// Reasons and verdicts of entries.
const (
	ReasonDefaultDeny = "default-deny"
	ReasonAntiSpoof   = "anti-spoof"
	ReasonPolicyRule  = "policy-rule"
	// ReasonAudit: what audited policies (selectors.ModeAnnotation) would change; the verdict is
	// nft.WouldDrop or nft.WouldAllow, and the connection's real verdict the opposite.
	ReasonAudit  = "audit"
	VerdictDrop  = "drop"
	VerdictAllow = "allow"
)

// Options configure a Logger.
type Options struct {
	// Node is the node's name, written on each line.
	Node string
	// Out receives the JSON lines.
	Out io.Writer
	// Window is how long records of one flow are merged into one line; 0 is one second.
	Window time.Duration
	// MaxFlows bounds the flows held for merging; a record of a new flow beyond it is suppressed.
	// 0 is 4096.
	MaxFlows int
	// Suppressed counts the records that get no line of their own (nil: not counted there).
	Suppressed prometheus.Counter
}

// SuppressedTotal is the agent's counter of suppressed records, for Options.Suppressed.
var SuppressedTotal = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "nftpolicy_drop_log_suppressed_total",
	Help: "Drop log records that got no line of their own: merged into their flow's line, beyond the flows held, or lost by the kernel.",
})

// flowKey is what makes records one flow: the drop point and the connection without its source
// port (a client retrying from new ports is the same refusal).
type flowKey struct {
	prefix   string
	src, dst netip.Addr
	proto    uint8
	dstPort  uint16
}

// Logger merges and writes drop log records. Its methods are safe for concurrent use.
type Logger struct {
	opts Options
	dir  atomic.Pointer[Directory]

	mu         sync.Mutex
	flows      map[flowKey]*Entry
	order      []flowKey // flows in the order they were first seen
	suppressed uint64
	lostSeen   uint64 // the source's lost records already counted
	foreign    uint64 // records whose prefix is not a drop point's
	enc        *json.Encoder
}

// New returns a Logger.
func New(opts Options) *Logger {
	if opts.Window <= 0 {
		opts.Window = time.Second
	}
	if opts.MaxFlows <= 0 {
		opts.MaxFlows = 4096
	}
	return &Logger{opts: opts, flows: map[flowKey]*Entry{}, enc: json.NewEncoder(opts.Out)}
}

// SetDirectory makes d name the records handled from now on (the agent sets one per committed model).
func (l *Logger) SetDirectory(d *Directory) { l.dir.Store(d) }

// Run handles src's records until ctx is done or src is closed, writing each flow's line when its
// window ends, and the lines still held when it returns.
func (l *Logger) Run(ctx context.Context, src nflog.Source) error {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(l.opts.Window / 4)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				l.countLost(src.Lost())
				l.Flush(now)
			case <-done:
				return
			}
		}
	}()
	err := src.Read(ctx, l.Handle)
	close(done)
	<-stopped
	l.countLost(src.Lost())
	l.FlushAll()
	return err
}

// Handle adds one record to its flow.
func (l *Logger) Handle(r nflog.Record) {
	if _, ok := nft.ParseLogPrefix(r.Prefix); !ok {
		l.mu.Lock()
		l.foreign++
		l.mu.Unlock()
		return
	}
	p, err := r.Packet()
	if err != nil && !p.Src.IsValid() {
		l.mu.Lock()
		l.foreign++
		l.mu.Unlock()
		return
	}
	key := flowKey{prefix: r.Prefix, src: p.Src, dst: p.Dst, proto: p.Proto, dstPort: p.DstPort}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.flows[key]; ok {
		e.Count++
		if r.Timestamp.After(e.Last) {
			e.Last = r.Timestamp
		}
		l.suppress(1)
		return
	}
	if len(l.flows) >= l.opts.MaxFlows {
		l.suppress(1)
		return
	}
	l.flows[key] = l.entry(r, p)
	l.order = append(l.order, key)
}

// entry makes a flow's line from its first record; name fills in what the directory says of it.
func (l *Logger) entry(r nflog.Record, p nflog.Packet) *Entry {
	return &Entry{First: r.Timestamp, Last: r.Timestamp, Count: 1, Node: l.opts.Node, Verdict: VerdictDrop,
		Src: Endpoint{IP: p.Src, Port: p.SrcPort}, Dst: Endpoint{IP: p.Dst, Port: p.DstPort}, Protocol: protocolName(p.Proto)}
}

// name fills in the pods, policies, verdict and reason of a flow's line at its drop point, from the
// directory set when the line is written: a record may reach the agent before the directory of the
// commit that made its drop point.
func (l *Logger) name(e *Entry, point nft.DropPoint) {
	dir := l.dir.Load()
	e.Src, e.Dst = endpoint(dir, e.Src.IP, e.Src.Port), endpoint(dir, e.Dst.IP, e.Dst.Port)
	if point.AntiSpoof {
		e.Reason = ReasonAntiSpoof
		return
	}
	if point.Counter != "" {
		// The first packet of a connection that a policy rule admitted (log level all).
		// Or, from an audited policy's counter, a connection denied that the policy would admit.
		e.Verdict, e.Reason = VerdictAllow, ReasonPolicyRule
		if l, ok := dir.rule(point.Counter); ok {
			e.Direction, e.Policies = string(l.Direction), []string{l.Namespace + "/" + l.Policy}
			if l.Audit != "" {
				e.Verdict, e.Reason = string(l.Audit), ReasonAudit
			} else {
				rule := l.Rule
				e.Rule = &rule
			}
			// The pod the rule applies to is the destination of ingress, the source of egress.
			local := e.Dst
			if l.Direction == "egress" {
				local = e.Src
			}
			if local.Pod != "" {
				e.Pod = local.Namespace + "/" + local.Pod
			}
		}
		return
	}
	e.Reason = ReasonDefaultDeny
	if point.WouldDrop {
		e.Verdict, e.Reason = string(nft.WouldDrop), ReasonAudit
	}
	if pp, ok := dir.point(point.Chain); ok {
		e.Direction = string(pp.dir)
		e.Pod = pp.pod.Namespace + "/" + pp.pod.Name
		e.Policies = pp.isolating
		if point.WouldDrop {
			e.Policies = pp.audited
		}
	}
}

func endpoint(d *Directory, addr netip.Addr, port uint16) Endpoint {
	ep := Endpoint{IP: addr, Port: port}
	if pod, ok := d.pod(addr); ok {
		ep.Pod, ep.Namespace = pod.Name, pod.Namespace
	}
	return ep
}

// Flush writes the flows whose window has ended at now, oldest first.
func (l *Logger) Flush(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flush(func(e *Entry) bool { return !now.Before(e.First.Add(l.opts.Window)) })
}

// FlushAll writes every flow held.
func (l *Logger) FlushAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flush(func(*Entry) bool { return true })
}

func (l *Logger) flush(due func(*Entry) bool) {
	kept := l.order[:0]
	for _, k := range l.order {
		e := l.flows[k]
		if !due(e) {
			kept = append(kept, k)
			continue
		}
		delete(l.flows, k)
		point, _ := nft.ParseLogPrefix(k.prefix) // a flow's prefix is a drop point's
		l.name(e, point)
		// A line that cannot be written is lost like a suppressed record; the writer reports it.
		if err := l.enc.Encode(e); err != nil {
			l.suppress(uint64(e.Count))
		}
	}
	clear(l.order[len(kept):])
	l.order = kept
}

// countLost counts the records the kernel could not deliver, once each.
func (l *Logger) countLost(lost uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lost > l.lostSeen {
		l.suppress(lost - l.lostSeen)
		l.lostSeen = lost
	}
}

// suppress counts n records without a line of their own. l.mu is held.
func (l *Logger) suppress(n uint64) {
	l.suppressed += n
	if l.opts.Suppressed != nil {
		l.opts.Suppressed.Add(float64(n))
	}
}

// Stats are a Logger's counts so far.
type Stats struct {
	// Suppressed records got no line of their own; Foreign records carried no drop point's prefix.
	Suppressed, Foreign uint64
}

// Stats returns the counts so far.
func (l *Logger) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Suppressed: l.suppressed, Foreign: l.foreign}
}

func protocolName(p uint8) string {
	switch p {
	case nft.ProtoTCP:
		return "tcp"
	case nft.ProtoUDP:
		return "udp"
	case nft.ProtoSCTP:
		return "sctp"
	case nft.ProtoICMP:
		return "icmp"
	case nft.ProtoICMPv6:
		return "ipv6-icmp"
	default:
		return strconv.Itoa(int(p))
	}
}
