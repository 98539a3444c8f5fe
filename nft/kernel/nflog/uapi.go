package nflog

// Constants of include/uapi/linux/netfilter/nfnetlink_log.h that golang.org/x/sys/unix lacks.
const (
	// enum nfulnl_msg_types: the low byte of a message type whose high byte is NFNL_SUBSYS_ULOG.
	msgPacket = 0 // NFULNL_MSG_PACKET: a logged packet, kernel to userspace
	msgConfig = 1 // NFULNL_MSG_CONFIG: configures the instance of one group

	// enum nfulnl_msg_config_cmds: the command of NFULA_CFG_CMD.
	cfgCmdBind   = 1 // NFULNL_CFG_CMD_BIND: create the group's instance, owned by this socket
	cfgCmdUnbind = 2 // NFULNL_CFG_CMD_UNBIND: destroy it

	// enum nfulnl_attr_config: attributes of a configuration message.
	attrCfgCmd     = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd {u8 command}
	attrCfgMode    = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode {be32 range; u8 mode; u8 pad}
	attrCfgTimeout = 4 // NFULA_CFG_TIMEOUT: be32, in hundredths of a second
	attrCfgQThresh = 5 // NFULA_CFG_QTHRESH: be32, records batched before a send
	attrCfgFlags   = 6 // NFULA_CFG_FLAGS: be16

	copyPacket = 0x02   // NFULNL_COPY_PACKET: copy the packet's first bytes into NFULA_PAYLOAD
	cfgFlagSeq = 0x0001 // NFULNL_CFG_F_SEQ: number the group's records in NFULA_SEQ

	// enum nfulnl_attr_type: attributes of a packet message.
	attrPacketHdr  = 1  // NFULA_PACKET_HDR: struct nfulnl_msg_packet_hdr {be16 hw_protocol; u8 hook; u8 pad}
	attrMark       = 2  // NFULA_MARK: be32
	attrTimestamp  = 3  // NFULA_TIMESTAMP: struct nfulnl_msg_packet_timestamp {be64 sec; be64 usec}
	attrIfindexIn  = 4  // NFULA_IFINDEX_INDEV: be32
	attrIfindexOut = 5  // NFULA_IFINDEX_OUTDEV: be32
	attrPayload    = 9  // NFULA_PAYLOAD: the copied bytes, from the network header on
	attrPrefix     = 10 // NFULA_PREFIX: NUL-terminated string
	attrSeq        = 12 // NFULA_SEQ: be32, per group, with NFULNL_CFG_F_SEQ
)
