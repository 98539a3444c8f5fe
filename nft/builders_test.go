package nft

import "github.com/nftpolicy/nftpolicy/nft/nfttest"

// The shared test models of package nfttest, under the short names these tests use. Their IP plan
// is documented there.
const (
	redisIP      = nfttest.RedisIP
	redisIPv6    = nfttest.RedisIPv6
	guestbookIP  = nfttest.GuestbookIP
	remoteGBIP   = nfttest.RemoteGBIP
	busyboxIP    = nfttest.BusyboxIP
	nodeIP       = nfttest.NodeIP
	externalDNS  = nfttest.ExternalDNS
	fabricIface  = nfttest.FabricIface
	redisIface   = nfttest.RedisIface
	guestbkIface = nfttest.GuestbookIface
)

type (
	podTweak = nfttest.PodTweak
)

var (
	addr                = nfttest.Addr
	single              = nfttest.Single
	makeLocalPod        = nfttest.MakeLocalPod
	withIPs             = nfttest.WithIPs
	isolatedIngress     = nfttest.IsolatedIngress
	makeRule            = nfttest.MakeRule
	fromPeers           = nfttest.FromPeers
	onPorts             = nfttest.OnPorts
	tcp                 = nfttest.TCP
	udp                 = nfttest.UDP
	guestbookModel      = nfttest.GuestbookModel
	guestbookInterfaces = nfttest.GuestbookInterfaces
	emptyModel          = nfttest.EmptyModel
	applierSequence     = nfttest.ApplierSequence
	benchModel          = nfttest.BenchModel
	movePod             = nfttest.MovePod
)

func compileGuestbook() *Ruleset {
	return Compile(CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces()})
}
