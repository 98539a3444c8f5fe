package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A few nf_tables requests google/nftables does not make, sent on a netfilter netlink socket of our own.

// dialNetfilter opens a netfilter netlink socket in the namespace netnsFd (-1: the caller's).
func dialNetfilter(netnsFd int) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if netnsFd >= 0 {
		cfg.NetNS = netnsFd
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	return conn, nil
}

// generation asks the kernel for the namespace's ruleset generation (NFT_MSG_GETGEN), which every
// committed batch increments.
func generation(conn *netlink.Conn) (uint32, error) {
	replies, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, err
	}
	for _, m := range replies {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("no generation in the kernel's answer")
}

// setAttributes are what google/nftables does not decode of a set: its comment, and the key length
// of a verdict map (whose key type it overwrites with the data type).
type setAttributes struct {
	comment string
	keyLen  uint32
}

// dumpSetAttributes lists the sets of table with a NFT_MSG_GETSET dump of its own.
func dumpSetAttributes(conn *netlink.Conn, table string) (map[string]setAttributes, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: append([]byte(table), 0)}})
	if err != nil {
		return nil, err
	}
	// struct nfgenmsg: family, version, resource id.
	header := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSET), Flags: netlink.Request | netlink.Dump},
		Data:   append(header, attrs...),
	})
	if err != nil {
		return nil, fmt.Errorf("dumping sets: %w", err)
	}
	out := map[string]setAttributes{}
	for _, msg := range msgs {
		if len(msg.Data) < len(header) {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(msg.Data[len(header):])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		var name string
		var a setAttributes
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_NAME:
				name = ad.String()
			case unix.NFTA_SET_KEY_LEN:
				a.keyLen = ad.Uint32()
			case unix.NFTA_SET_USERDATA:
				a.comment, _ = userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_COMMENT)
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decoding a set: %w", err)
		}
		out[name] = a
	}
	return out, nil
}
