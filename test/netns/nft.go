package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/mvstack/mvstack/proto"
)

// ErrNoNft is returned by the fault methods when nft (Debian package
// nftables) is not installed.
var ErrNoNft = errors.New("netns: nft not found: apt-get install nftables")

// nftTable is the bridge-family table that holds the lab's faults, in the
// lab's switch namespace.
const nftTable = "mvlab"

// SetLoss makes the bridge drop percent (0 to 100) of the frames it
// forwards from one port to another, each copy independently (a broadcast
// may reach some hosts and not others). With types, only frames of those
// EtherTypes are dropped. SetLoss(0) removes the loss; partitions set by
// [Lab.Partition] stay.
func (l *Lab) SetLoss(percent int, types ...proto.EtherType) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("netns: loss %d%%, want 0 to 100", percent)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loss, l.lossType = percent, slices.Clone(types)
	return l.applyRules()
}

// Partition splits the lab: frames between hosts in different groups are
// dropped by the bridge, in both directions, broadcasts included. Hosts in
// no group keep reaching everyone. A new Partition replaces the previous
// one (blocks set by [Lab.Block] stay); [Lab.Heal] removes it. Loss set
// by [Lab.SetLoss] stays.
func (l *Lab) Partition(groups ...[]*Host) error {
	seen := make(map[int]bool)
	var idx [][]int
	for _, g := range groups {
		ids, err := l.indexes("Partition", g)
		if err != nil {
			return err
		}
		for _, i := range ids {
			if seen[i] {
				return fmt.Errorf("netns: Partition: host %s is in two groups", l.Hosts[i].Name)
			}
			seen[i] = true
		}
		if len(ids) > 0 {
			idx = append(idx, ids)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.groups = idx
	return l.applyRules()
}

// Block drops the frames that hosts in from send to hosts in to, in that
// direction only (an asymmetric partition: to still reaches from). Blocks
// add up until [Lab.Heal].
func (l *Lab) Block(from, to []*Host) error {
	f, err := l.indexes("Block", from)
	if err != nil {
		return err
	}
	d, err := l.indexes("Block", to)
	if err != nil {
		return err
	}
	if len(f) == 0 || len(d) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocks = append(l.blocks, [2][]int{f, d})
	return l.applyRules()
}

// indexes checks that hosts belong to the lab and returns their indexes.
func (l *Lab) indexes(op string, hosts []*Host) ([]int, error) {
	ids := make([]int, 0, len(hosts))
	for _, h := range hosts {
		if h == nil || h.lab != l || h.Index < 0 {
			return nil, fmt.Errorf("netns: %s: %v is not a host of this lab", op, h)
		}
		ids = append(ids, h.Index)
	}
	return ids, nil
}

// Heal removes the partition and every block; loss set by [Lab.SetLoss]
// stays.
func (l *Lab) Heal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.groups, l.blocks = nil, nil
	return l.applyRules()
}

// applyRules replaces the lab's nftables table with one that holds the
// current partition and loss, in one atomic nft transaction. l.mu is held.
func (l *Lab) applyRules() error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "add table bridge %s\n", nftTable)
	fmt.Fprintf(&b, "flush table bridge %s\n", nftTable)
	fmt.Fprintf(&b, "add chain bridge %s cross { type filter hook forward priority 0; policy accept; }\n", nftTable)
	for i, gi := range l.groups {
		for j, gj := range l.groups {
			if i == j {
				continue
			}
			fmt.Fprintf(&b, "add rule bridge %s cross iifname %s oifname %s drop\n", nftTable, portSet(gi), portSet(gj))
		}
	}
	for _, bl := range l.blocks {
		fmt.Fprintf(&b, "add rule bridge %s cross iifname %s oifname %s drop\n", nftTable, portSet(bl[0]), portSet(bl[1]))
	}
	if l.loss > 0 {
		match := ""
		if len(l.lossType) > 0 {
			ts := make([]string, len(l.lossType))
			for i, t := range l.lossType {
				ts[i] = fmt.Sprintf("0x%04x", uint16(t))
			}
			match = "ether type { " + strings.Join(ts, ", ") + " } "
		}
		if l.loss < 100 {
			match += fmt.Sprintf("numgen random mod 100 < %d ", l.loss)
		}
		fmt.Fprintf(&b, "add rule bridge %s cross %sdrop\n", nftTable, match)
	}
	if err := nft(l.Switch, b.String()); err != nil {
		return fmt.Errorf("netns: setting faults on the bridge: %w", err)
	}
	return nil
}

// nft runs an nft script (one transaction) in namespace ns.
func nft(ns, script string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return ErrNoNft
	}
	_, err := run([]byte(script), "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

// portSet is an nft anonymous set of the bridge ports of hosts ids.
func portSet(ids []int) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = strconv.Quote(portName(id))
	}
	return "{ " + strings.Join(q, ", ") + " }"
}

// Cut pulls (down = true) or plugs back (false) the host's cable: its port
// on the bridge goes down, so the host's interface loses carrier. Plugging
// back waits until the port forwards again.
func (l *Lab) Cut(h *Host, down bool) error {
	if h == nil || h.lab != l || h.Index < 0 {
		return fmt.Errorf("netns: Cut: %v is not a host of this lab", h)
	}
	state := "up"
	if down {
		state = "down"
	}
	if err := ip("-n", l.Switch, "link", "set", h.Port(), state); err != nil {
		return err
	}
	if down {
		return nil
	}
	return l.settle()
}

// SetMTU changes the MTU of every interface in the lab: the hosts', the
// bridge ports' and the bridge's.
func (l *Lab) SetMTU(mtu int) error {
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("netns: SetMTU(%d), want 68 to 65535", mtu)
	}
	m := strconv.Itoa(mtu)
	var sw [][]string
	for _, h := range l.Hosts {
		sw = append(sw, []string{"link", "set", h.Port(), "mtu", m})
	}
	sw = append(sw, []string{"link", "set", bridgeName, "mtu", m})
	if err := ipBatch(l.Switch, sw); err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := ip("-n", h.Name, "link", "set", h.Iface, "mtu", m); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.mtu = mtu
	l.mu.Unlock()
	return nil
}

// MTU returns the MTU of the lab's interfaces.
func (l *Lab) MTU() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mtu
}
