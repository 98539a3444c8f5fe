package kernel

import (
	"fmt"

	"github.com/nftpolicy/nftpolicy/nft"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Counters reads every named counter of table, by name, in one netlink dump of the table's objects.
// A missing table has no counters (the kernel's dump filtered on it is empty).
func (b *NetlinkBackend) Counters(table string) (map[string]nft.CounterValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.connection()
	if err != nil {
		return nil, err
	}
	objs, err := conn.GetNamedObjects(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	if err != nil {
		b.dropConn()
		return nil, fmt.Errorf("reading the counters of table inet %s: %w", table, err)
	}
	out := make(map[string]nft.CounterValue, len(objs))
	for _, o := range objs {
		named, ok := o.(*nftables.NamedObj)
		if !ok || named.Type != nftables.ObjTypeCounter {
			continue
		}
		c, ok := named.Obj.(*expr.Counter)
		if !ok {
			return nil, fmt.Errorf("reading counter %s of table inet %s: unexpected data %T", named.Name, table, named.Obj)
		}
		out[named.Name] = nft.CounterValue{Packets: c.Packets, Bytes: c.Bytes}
	}
	return out, nil
}
