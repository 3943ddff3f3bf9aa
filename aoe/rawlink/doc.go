// Package rawlink is a [proto.Link] for AoE over an AF_PACKET socket whose
// reads block in the kernel on the reading goroutine's own thread, instead
// of parking in the Go netpoller.
//
// # Why
//
// AoE is request/response with one frame each way. Over the netpoller, an
// idle reader costs a receive that fails with EAGAIN, an epoll wait and a
// scheduler wake-up for every request it serves; at queue depth 1 that was
// about as much CPU as the I/O itself. A blocking recvmmsg (MSG_WAITFORONE)
// wakes the waiting thread directly, as vblade's loop does, and still takes
// every frame already queued. Sends are sendmsg or sendmmsg, header,
// payload and padding passed as pieces without a copy.
//
// # Deadlines and Close
//
// The socket has a 50 ms receive timeout, so a blocked read notices a new
// read deadline or Close within 50 ms; Close waits for it. Frames the host
// sends are filtered out in the kernel, as proto's link does.
package rawlink
