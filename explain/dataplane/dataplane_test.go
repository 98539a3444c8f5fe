package dataplane

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/explain"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/nfttest"
)

// fakeKernel holds a table as a kernel would, with its counters.
type fakeKernel struct {
	rs       *nft.Ruleset
	counters map[string]nft.CounterValue
}

func (k *fakeKernel) ReadRuleset(string) (*nft.Ruleset, error) { return k.rs, nil }
func (k *fakeKernel) Counters(string) (map[string]nft.CounterValue, error) {
	return k.counters, nil
}

type fakeConntrack struct{ flows []nft.Flow }

func (c fakeConntrack) Tracked(f nft.Flow) (int, error) {
	n := 0
	for _, g := range c.flows {
		if g == f {
			n++
		}
	}
	return n, nil
}

func guestbook() *nft.Ruleset {
	return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookModel(), Interfaces: nfttest.GuestbookInterfaces()})
}

func query(dir explain.Direction, src, dst string, port uint16) Query {
	return Query{Direction: dir, Src: nfttest.Addr(src), Dst: nfttest.Addr(dst), Proto: nft.ProtoTCP, Port: port}
}

// decided is the step whose verdict ended the trace.
func decided(t *testing.T, a *explain.DataplaneAnswer) explain.PathStep {
	t.Helper()
	for i := len(a.Path) - 1; i >= 0; i-- {
		if v := a.Path[i].Verdict; v == "accept" || v == "drop" {
			return a.Path[i]
		}
	}
	t.Fatalf("no step decided: %+v", a.Path)
	return explain.PathStep{}
}

func TestAnswerTracesTheKernelsTable(t *testing.T) {
	rs := guestbook()
	k := &fakeKernel{rs: rs, counters: map[string]nft.CounterValue{
		"allow-in_default_redis-policy_0": {Packets: 7}, "deny-in_default": {Packets: 3},
	}}
	flow := nft.Flow{Src: nfttest.Addr(nfttest.GuestbookIP), Dst: nfttest.Addr(nfttest.RedisIP), Proto: nft.ProtoTCP, DstPort: 6379}
	h := &Handler{Node: "n1", Table: "nftpolicy", Committed: func() *nft.Ruleset { return rs }, Kernel: k, Conntrack: fakeConntrack{[]nft.Flow{flow}}}

	allowed, err := h.Answer(query(explain.Ingress, nfttest.GuestbookIP, nfttest.RedisIP, 6379))
	if err != nil {
		t.Fatal(err)
	}
	step := decided(t, allowed)
	if allowed.Verdict != explain.Accept || step.Counter != "allow-in_default_redis-policy_0" || step.CounterValue != 7 || len(allowed.Drift) != 0 {
		t.Errorf("guestbook -> redis ingress: %s by %+v, drift %v; want accept by redis-policy ingress[0] counting 7, no drift", allowed.Verdict, step, allowed.Drift)
	}
	if !allowed.Conntrack.Held {
		t.Error("conntrack holds the flow, the answer says it does not")
	}
	if !slices.ContainsFunc(step.Lookups, func(l explain.Lookup) bool { return l.Set == "peers_guestbook_v4" && l.Found }) {
		t.Errorf("the deciding rule's lookups %+v do not show the guestbook peer found", step.Lookups)
	}

	denied, err := h.Answer(query(explain.Ingress, nfttest.BusyboxIP, nfttest.RedisIP, 6379))
	if err != nil {
		t.Fatal(err)
	}
	step = decided(t, denied)
	if denied.Verdict != explain.Drop || step.Counter != "deny-in_default" || step.CounterValue != 3 || denied.Conntrack.Held {
		t.Errorf("busybox -> redis ingress: %s by %+v, conntrack %v; want drop by the default deny counting 3, untracked", denied.Verdict, step, denied.Conntrack)
	}

	egress, err := h.Answer(query(explain.Egress, nfttest.GuestbookIP, nfttest.RedisIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	if egress.Verdict != explain.Drop || !strings.Contains(decided(t, egress).Comment, "egress isolated by default/guestbook-egress") {
		t.Errorf("guestbook -> redis:80 egress: %s via %+v, want the egress default deny", egress.Verdict, egress.Path)
	}
}

func TestAnswerReportsDrift(t *testing.T) {
	committed := guestbook()
	// The kernel lost the guestbook pod from redis-policy's peer set, behind the agent's back.
	drifted := *committed
	drifted.Sets = slices.Clone(committed.Sets)
	for i := range drifted.Sets {
		if drifted.Sets[i].Name == "peers_guestbook_v4" {
			drifted.Sets[i].Elements = slices.DeleteFunc(slices.Clone(drifted.Sets[i].Elements), func(e nft.Element) bool {
				return e.Addr == nfttest.Addr(nfttest.GuestbookIP)
			})
		}
	}
	h := &Handler{Node: "n1", Table: "nftpolicy", Committed: func() *nft.Ruleset { return committed }, Kernel: &fakeKernel{rs: &drifted}}
	a, err := h.Answer(query(explain.Ingress, nfttest.GuestbookIP, nfttest.RedisIP, 6379))
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != explain.Drop || len(a.Drift) == 0 || !strings.Contains(strings.Join(a.Drift, "\n"), "peers_guestbook_v4") {
		t.Errorf("verdict %s, drift %q; want drop, and drift naming the set whose lookup differs", a.Verdict, a.Drift)
	}

	h.Committed = func() *nft.Ruleset { return nil }
	if a, err = h.Answer(query(explain.Ingress, nfttest.GuestbookIP, nfttest.RedisIP, 6379)); err != nil || len(a.Drift) != 1 {
		t.Errorf("without a committed ruleset: drift %q, err %v; want one line saying so", a.Drift, err)
	}
}

func TestServeHTTP(t *testing.T) {
	rs := guestbook()
	h := &Handler{Node: "n1", Table: "nftpolicy", Committed: func() *nft.Ruleset { return rs }, Kernel: &fakeKernel{rs: rs}}
	q := query(explain.Ingress, nfttest.BusyboxIP, nfttest.RedisIP, 6379)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path+"?"+q.Values().Encode(), nil))
	var a explain.DataplaneAnswer
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &a) != nil || a.Verdict != explain.Drop || a.Node != "n1" {
		t.Errorf("GET: %d %s", rec.Code, rec.Body.String())
	}
	for _, bad := range []url.Values{
		{"direction": {"sideways"}, "src": {"10.0.0.1"}, "dst": {"10.0.0.2"}, "protocol": {"TCP"}, "port": {"80"}},
		{"direction": {"egress"}, "src": {"10.0.0.1"}, "dst": {"fd00::2"}, "protocol": {"TCP"}, "port": {"80"}},
		{"direction": {"egress"}, "src": {"10.0.0.1"}, "dst": {"10.0.0.2"}, "protocol": {"ICMP"}, "port": {"80"}},
		{"direction": {"egress"}, "src": {"10.0.0.1"}, "dst": {"10.0.0.2"}, "protocol": {"TCP"}, "port": {"0"}},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path+"?"+bad.Encode(), nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400", bad, rec.Code)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestQueryRoundTrip(t *testing.T) {
	q := Query{Direction: explain.Egress, Src: nfttest.Addr("fd18::10"), Dst: nfttest.Addr("fd18::20"), Proto: nft.ProtoSCTP, Port: 9}
	got, err := ParseQuery(q.Values())
	if err != nil || got != q {
		t.Errorf("got %+v, %v; want %+v", got, err, q)
	}
}
