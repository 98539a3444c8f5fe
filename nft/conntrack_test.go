package nft

import (
	"slices"
	"testing"
)

func TestConntrackCleanupEndsOnlyFlowsTheRulesetDenies(t *testing.T) {
	rs := compileGuestbook()
	kept := []Flow{
		{Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379},       // both sides allow
		{Src: addr(remoteGBIP), Dst: addr(redisIP), Proto: ProtoUDP, DstPort: 9},           // redis admits guestbook pods on any port
		{Src: addr(redisIP), Dst: addr(busyboxIP), Proto: ProtoTCP, DstPort: 80},           // redis is not isolated for egress
		{Src: addr(busyboxIP), Dst: addr("198.18.0.99"), Proto: ProtoTCP, DstPort: 80},     // touches no isolated pod
		{Src: addr(guestbookIP), Dst: addr("203.0.113.10"), Proto: ProtoTCP, DstPort: 443}, // inside the ipBlock
	}
	denied := []Flow{
		{Src: addr(busyboxIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 6379},          // not a guestbook pod
		{Src: addr(guestbookIP), Dst: addr(redisIP), Proto: ProtoTCP, DstPort: 80},          // guestbook's egress: 6379 only
		{Src: addr(guestbookIP), Dst: addr("203.0.113.200"), Proto: ProtoTCP, DstPort: 443}, // the ipBlock's except
		{Src: addr(remoteGBIP), Dst: addr(guestbookIP), Proto: ProtoICMP},                   // guestbook admits nothing
	}
	ct := &FakeConntrack{Flows: append(slices.Clone(kept), denied...)}
	n, err := ct.Cleanup(rs, guestbookInterfaces())
	if err != nil {
		t.Fatal(err)
	}
	if n != len(denied) {
		t.Errorf("deleted %d flows, want %d", n, len(denied))
	}
	if !slices.Equal(ct.Flows, kept) {
		t.Errorf("kept %v, want %v", ct.Flows, kept)
	}
}
