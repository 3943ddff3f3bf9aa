package proto

// SealForTest seals body into a frame as an endpoint with epoch h.SrcEpoch
// at src would, so tests can make authentic frames with impossible fields.
func SealForTest(r *Keyring, h Header, src, dst MAC, body []byte) []byte {
	n := max(HeaderLen+len(body)+TagLen, MinPayload)
	buf := make([]byte, n)
	copy(buf[HeaderLen:], body)
	return r.seal(buf, h, src, dst, len(body))
}

// EncodeRequestForTest encodes a request message as the RPC layer does.
func EncodeRequestForTest(id uint64, method string, payload []byte) []byte {
	return message{kind: kindRequest, id: id, method: method, payload: payload}.appendTo(nil)
}
