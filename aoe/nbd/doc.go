// Package nbd implements a Network Block Device server (the fixed newstyle
// protocol of the NBD project's proto.md) that serves any [Device]: an AoE
// device from package aoe/initiator, so QEMU and the NBD tools reach AoE
// volumes, or a plain file in tests.
//
// # Handshake
//
// Fixed newstyle only, with NBD_FLAG_NO_ZEROES. Options: NBD_OPT_GO,
// NBD_OPT_INFO (NBD_INFO_EXPORT, NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
// NBD_INFO_BLOCK_SIZE), NBD_OPT_EXPORT_NAME, NBD_OPT_LIST and NBD_OPT_ABORT;
// any other option is answered NBD_REP_ERR_UNSUP, so clients fall back to
// simple replies. The empty export name selects the first export.
//
// # Transmission
//
// READ, WRITE (with FUA), FLUSH, TRIM, WRITE_ZEROES and DISC, with simple
// replies. Requests run concurrently (up to Config.MaxInFlight per
// connection) and replies go back as they complete, matched by the client's
// cookie. TRIM is a hint: it succeeds without changing data unless the
// device implements [Trimmer].
package nbd
