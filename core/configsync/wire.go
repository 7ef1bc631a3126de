package configsync

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vigil-ha/vigil/core/frame"
	"io"
	"net"
)

// The wire. Every frame is a 4-byte big-endian length, then that many
// bytes, which start with a header: magic "VGCS", the protocol version, a
// kind byte. Strings are a length byte and the bytes.
//
//	server → client  challenge  header('C') | challenge[32]
//	client → server  request    header('Q') | challenge[32] | nonce[32] | cluster | node | service | sum[32]
//	                            | HMAC-SHA256(requestKey, everything before)
//	server → client  reply      header('A') | gcm-nonce[12] | AES-256-GCM(replyKey(challenge, nonce),
//	                            status | version[8] | sum[32] | message(2-byte length) | content)
//	                            with the reply's header and the whole request frame as associated data
//	server → client  refusal    header('R') | code      (in clear: the request did not authenticate)
//
// The request echoes the server's fresh challenge, so a recorded request
// is refused on any other connection. The reply is sealed under a key
// derived from the shared key, the challenge and the client's fresh
// nonce, and authenticates the request it answers, so only a holder of
// the key can produce it, only for this exchange: a replayed or forged
// reply fails to open. The refusal is unauthenticated (the server could
// not key an answer to a request it could not verify): it carries a code,
// never a detail, and a client treats it as no answer.
const (
	protoVersion = 1
	headerLen    = 6
	nonceLen     = 32
	sumLen       = sha256.Size
	macLen       = sha256.Size
	gcmNonceLen  = 12
	gcmTagLen    = 16
	// maxName bounds a cluster, node or service name on the wire.
	maxName = 255
	// maxMessage bounds a reply's message (why a fetch was refused).
	maxMessage = 1024

	kindChallenge = 'C'
	kindRequest   = 'Q'
	kindReply     = 'A'
	kindRefusal   = 'R'

	challengeFrameLen = headerLen + nonceLen
	// maxRequestFrame is the largest request: three names at their limit.
	maxRequestFrame = headerLen + 2*nonceLen + 3*(1+maxName) + sumLen + macLen
	// ReplyOverhead is what a reply frame adds to a config's content, at
	// most: a reader refuses a reply frame longer than its MaxSize plus
	// this before reading it.
	ReplyOverhead = headerLen + gcmNonceLen + gcmTagLen + 1 + 8 + sumLen + 2 + maxMessage
	// MaxMaxSize bounds MaxSize, so that a frame's length fits the wire
	// and a reader's buffer stays reasonable.
	MaxMaxSize = 64 << 20
)

var magic = [4]byte{'V', 'G', 'C', 'S'}

// Reply statuses, inside the sealed reply.
const (
	statusOK = iota
	statusNotFound
	statusBadName
	statusStale    // the server has another sum than the one asked for
	statusCorrupt  // the server's content does not match its own sum
	statusTooLarge // the server's content is over its MaxSize
	statusWrongCluster
	numStatus
)

// Refusal codes, in clear.
const (
	refuseAuth      = 1 // bad tag, or another connection's challenge
	refuseMalformed = 2
)

// request is a request as it travels.
type request struct {
	Challenge [nonceLen]byte
	Nonce     [nonceLen]byte
	Cluster   string
	Node      string
	Service   string
	Sum       [sumLen]byte
}

// reply is a reply's sealed body, opened.
type reply struct {
	Status  byte
	Version int64
	Sum     [sumLen]byte
	Message string
	Content []byte
}

func header(kind byte) []byte {
	return append(magic[:len(magic):len(magic)], protoVersion, kind)
}

// kindOf returns a frame's kind, or 0 when the frame has no valid header.
func kindOf(frame []byte) byte {
	if len(frame) < headerLen || !bytes.Equal(frame[:headerLen-1], header(0)[:headerLen-1]) {
		return 0
	}
	return frame[headerLen-1]
}

// requestKey tags requests: a subkey, so that no request tag can be
// mistaken for anything else made with the shared key.
func requestKey(key []byte) []byte { return prf(key, []byte("vigil/configsync/request")) }

// replyAEAD seals the reply of the exchange opened by challenge and
// answered with nonce: a key no other exchange uses.
func replyAEAD(key []byte, challenge, nonce [nonceLen]byte) cipher.AEAD {
	k := prf(key, []byte("vigil/configsync/reply"), challenge[:], nonce[:])
	block, err := aes.NewCipher(k)
	if err != nil {
		panic(fmt.Sprintf("configsync: AES-256 with a 32-byte key: %v", err)) // cannot happen
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("configsync: GCM: %v", err)) // cannot happen
	}
	return aead
}

// prf is HMAC-SHA256 over the concatenated parts, as core/cluster derives
// its keys from the cluster secret.
func prf(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// checkWireName bounds a name so that it fits the wire.
func checkWireName(what, s string) error {
	if s == "" || len(s) > maxName {
		return fmt.Errorf("%s %q: give 1 to %d bytes", what, s, maxName)
	}
	return nil
}

func encodeChallenge(c [nonceLen]byte) []byte { return append(header(kindChallenge), c[:]...) }

func decodeChallenge(b []byte) ([nonceLen]byte, error) {
	var c [nonceLen]byte
	r := &frame.Reader{B: b}
	r.Expect(header(kindChallenge))
	copy(c[:], r.Take(nonceLen))
	if r.Bad || len(r.B) != 0 {
		return c, fmt.Errorf("%w: not a challenge (is this address a vigil daemon's config sync port?)", ErrMalformed)
	}
	return c, nil
}

func encodeRefusal(code byte) []byte { return append(header(kindRefusal), code) }

func decodeRefusal(b []byte) (byte, error) {
	r := &frame.Reader{B: b}
	r.Expect(header(kindRefusal))
	code := r.Byte()
	if r.Bad || len(r.B) != 0 {
		return 0, fmt.Errorf("%w: not a refusal", ErrMalformed)
	}
	return code, nil
}

// encodeRequest returns the tagged request frame.
func encodeRequest(reqKey []byte, q *request) ([]byte, error) {
	for _, f := range []struct{ what, s string }{{"cluster", q.Cluster}, {"node", q.Node}, {"service", q.Service}} {
		if err := checkWireName(f.what, f.s); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, maxRequestFrame)
	b = append(b, header(kindRequest)...)
	b = append(b, q.Challenge[:]...)
	b = append(b, q.Nonce[:]...)
	b = frame.PutStr(b, q.Cluster)
	b = frame.PutStr(b, q.Node)
	b = frame.PutStr(b, q.Service)
	b = append(b, q.Sum[:]...)
	return append(b, prf(reqKey, b)...), nil
}

// decodeRequest checks a request frame's tag, then decodes it.
func decodeRequest(reqKey, raw []byte) (*request, error) {
	body, err := frame.Open(reqKey, raw, maxRequestFrame)
	switch {
	case errors.Is(err, frame.ErrTag):
		return nil, fmt.Errorf("%w: the request's tag does not verify", ErrAuth)
	case err != nil:
		return nil, fmt.Errorf("%w: a request: %v", ErrMalformed, err)
	}
	return decodeRequestBody(body)
}

// decodeRequestBody decodes a request without its tag. Any input returns
// an error or a request whose names respect the wire's limits.
func decodeRequestBody(body []byte) (*request, error) {
	r := &frame.Reader{B: body}
	r.Expect(header(kindRequest))
	q := &request{}
	copy(q.Challenge[:], r.Take(nonceLen))
	copy(q.Nonce[:], r.Take(nonceLen))
	q.Cluster = r.Str()
	q.Node = r.Str()
	q.Service = r.Str()
	copy(q.Sum[:], r.Take(sumLen))
	switch {
	case r.Bad:
		return nil, fmt.Errorf("%w: truncated or not a request", ErrMalformed)
	case len(r.B) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the request", ErrMalformed, len(r.B))
	case q.Cluster == "" || q.Node == "" || q.Service == "":
		return nil, fmt.Errorf("%w: an empty name", ErrMalformed)
	}
	return q, nil
}

// sealReply returns the reply frame answering reqFrame (q decoded).
func sealReply(key []byte, reqFrame []byte, q *request, a *reply) []byte {
	msg := a.Message
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	plain := make([]byte, 0, 1+8+sumLen+2+len(msg)+len(a.Content))
	plain = append(plain, a.Status)
	plain = binary.BigEndian.AppendUint64(plain, uint64(a.Version))
	plain = append(plain, a.Sum[:]...)
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, a.Content...)

	frame := make([]byte, 0, headerLen+gcmNonceLen+len(plain)+gcmTagLen)
	frame = append(frame, header(kindReply)...)
	var nonce [gcmNonceLen]byte
	// The key is already unique to the exchange; a random nonce costs
	// nothing and keeps the seal safe if that ever changes.
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand crashes the program rather)
	frame = append(frame, nonce[:]...)
	return replyAEAD(key, q.Challenge, q.Nonce).Seal(frame, nonce[:], plain, replyAD(reqFrame))
}

// replyAD is a reply's associated data: its header and the request frame
// it answers, tag included.
func replyAD(reqFrame []byte) []byte { return append(header(kindReply), reqFrame...) }

// openReply opens a reply frame answering reqFrame (q encoded).
func openReply(key []byte, reqFrame []byte, q *request, frame []byte) (*reply, error) {
	if kindOf(frame) != kindReply || len(frame) < headerLen+gcmNonceLen+gcmTagLen {
		return nil, fmt.Errorf("%w: not a reply", ErrMalformed)
	}
	nonce := frame[headerLen : headerLen+gcmNonceLen]
	plain, err := replyAEAD(key, q.Challenge, q.Nonce).Open(nil, nonce, frame[headerLen+gcmNonceLen:], replyAD(reqFrame))
	if err != nil {
		return nil, fmt.Errorf("%w: the reply does not open (a different cluster secret, or a forged or replayed reply)", ErrAuth)
	}
	return decodeReplyBody(plain)
}

// decodeReplyBody decodes an opened reply. Any input returns an error or
// a reply with a known status and a bounded message.
func decodeReplyBody(b []byte) (*reply, error) {
	r := &frame.Reader{B: b}
	a := &reply{Status: r.Byte()}
	if v := r.Take(8); v != nil {
		a.Version = int64(binary.BigEndian.Uint64(v))
	}
	copy(a.Sum[:], r.Take(sumLen))
	var n int
	if v := r.Take(2); v != nil {
		n = int(binary.BigEndian.Uint16(v))
	}
	if n > maxMessage {
		return nil, fmt.Errorf("%w: a reply message of %d bytes", ErrMalformed, n)
	}
	a.Message = string(r.Take(n))
	switch {
	case r.Bad:
		return nil, fmt.Errorf("%w: truncated reply", ErrMalformed)
	case a.Status >= numStatus:
		return nil, fmt.Errorf("%w: unknown reply status %d", ErrMalformed, a.Status)
	case a.Status != statusOK && len(r.B) != 0:
		return nil, fmt.Errorf("%w: content in a reply of status %d", ErrMalformed, a.Status)
	}
	if a.Status == statusOK {
		a.Content = r.B
	}
	return a, nil
}

// writeFrame sends a frame behind its length, in one write where the
// connection allows it (writev).
func writeFrame(w io.Writer, b []byte) error {
	if len(b) > MaxMaxSize+ReplyOverhead {
		return fmt.Errorf("a frame of %d bytes is over the protocol's limit", len(b))
	}
	bufs := net.Buffers{binary.BigEndian.AppendUint32(nil, uint32(len(b))), b}
	_, err := bufs.WriteTo(w)
	return err
}

// errFrameTooLarge is a frame refused on its announced length.
var errFrameTooLarge = errors.New("frame too large")

// readFrame reads a frame of at most limit bytes. A longer frame is
// refused on its announced length, before any of it is read or allocated.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes announced, the limit is %d", errFrameTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("a frame of %d bytes: %w", n, err)
	}
	return b, nil
}
