package nodeclient

// Methods a node answers. Names are at most proto.MaxMethodLen bytes.
const (
	// MethodIdentify answers a broadcast with the node id as plain bytes
	// (no CBOR): what `mvctl discover` has always printed.
	MethodIdentify = "node.identify"
	// MethodDiscover answers a broadcast with a [Summary] (one frame).
	// Request: [DiscoverRequest].
	MethodDiscover = "node.discover"
	// MethodInfo: [InfoRequest] → [NodeInfo] (inventory, allocation,
	// wild and zombie domains, recent events).
	MethodInfo = "node.info"
	// MethodProbe: [ProbeRequest] → [Heartbeat]; the controller's direct
	// liveness probe. It carries a term and is refused for an old one.
	MethodProbe = "node.probe"
	// MethodHeartbeat is the one-way message a node sends its controller
	// every interval, and at once when a domain crashes: a [Heartbeat].
	MethodHeartbeat = "node.heartbeat"
	// MethodList: [ListRequest] → [DomainList].
	MethodList = "domain.list"
	// MethodCreate: [CreateRequest] → domain.Info.
	MethodCreate = "domain.create"
	// MethodOp: [OpRequest] → domain.Info (start, shutdown, destroy,
	// reboot, pause, resume, undefine).
	MethodOp = "domain.op"
	// MethodConsole: [DomainRequest] → [Console].
	MethodConsole = "domain.console"
	// MethodWild: [ListRequest] → [WildList], guests the node did not start.
	MethodWild = "domain.wild"
	// MethodImport: [ImportRequest] → domain.Info, adopting a wild guest.
	MethodImport = "domain.import"
	// MethodPin: [PinRequest] → [VCPUList] after the pin.
	MethodPin = "vcpu.pin"
	// MethodVCPUs: [DomainRequest] → [VCPUList].
	MethodVCPUs = "vcpu.info"
	// MethodNUMA: [DomainRequest] (ID 0 for every domain) → [NUMAReport].
	MethodNUMA = "numa.show"
)

// Methods lists every method a node serves, for counters and docs.
func Methods() []string {
	return []string{MethodIdentify, MethodDiscover, MethodInfo, MethodProbe, MethodList, MethodCreate,
		MethodOp, MethodConsole, MethodWild, MethodImport, MethodPin, MethodVCPUs, MethodNUMA,
		MethodAssign, MethodAttach, MethodDetach, MethodVolumeStatus, MethodRepair, MethodFence}
}
