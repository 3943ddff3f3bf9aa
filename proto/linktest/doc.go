// Package linktest implements an in-memory Ethernet switch whose ports are
// [proto.Link] values, so every protocol in mvstack runs its production code
// over real frames in unit tests, without root and without a kernel.
//
// # Switch
//
// [NewSwitch] makes a switch; [Switch.Link] attaches a link with a hardware
// address and an EtherType, like a packet socket bound to one protocol on a
// NIC. Several links may share a MAC (one station, several protocols, or
// several sockets on one protocol: each gets its own copy). The switch learns
// source addresses, forwards unicast to the station that owns the
// destination MAC, floods unknown unicast (counted in [Stats].Flooded) and
// sends broadcast and multicast to every other station of that EtherType.
// Stations behave like NICs: a unicast frame reaches only the links whose
// address is its destination, and links made promiscuous with
// [Link.SetPromiscuous] (sniffers, replaying attackers). A frame never goes back out of the
// station that sent it, so links sharing the sender's MAC do not see it.
//
// Each link has a bounded receive queue ([Config].QueueLen): a writer never
// blocks on a slow reader; frames beyond the queue are dropped and counted,
// like a NIC ring that overflows. [Link.SetDown] pulls a link's cable: frames
// from and to it vanish (counted in [Stats].DroppedDown) until it is plugged
// back in.
//
// Read deadlines behave as on a socket: once the deadline has passed,
// ReadFrom fails with [proto.ErrDeadline] even if frames are queued, so set
// a deadline in the future to drain a queue.
//
// # Faults
//
// A [Hook] sees every copy of a frame on its way to one receiving station
// (once for unicast, once per station for broadcast) and returns a [Verdict]:
// drop it, deliver it, deliver several copies, each after its own delay, or
// deliver a replaced payload (bit flips, truncation). Reordering arises from
// different delays. [Faults] builds a deterministic hook from rates of
// loss, duplication, reordering and corruption, delay, jitter and a seed;
// [Partition] cuts the segment into groups; [Chain] combines hooks.
// [Switch.SetHook] changes the faults while a test runs, and a hook that
// records the frames it sees gives tests frames to replay.
//
// # Capture
//
// With [Config].Pcap set, every frame that enters the switch is written, as a
// whole Ethernet II frame and before any fault, in pcap format (link type
// Ethernet, snap length large enough for jumbo frames); open it with
// Wireshark or tshark. A nil writer captures nothing.
//
// # Time
//
// The switch blocks only on channels and on timers from package time, so it
// works inside [testing/synctest] bubbles: create the switch and its links
// inside the bubble, and delays and read deadlines follow the bubble's fake
// clock. Delayed frames use [time.AfterFunc]; the switch starts no other
// goroutine, and [Switch.Close] discards frames still in flight.
package linktest
