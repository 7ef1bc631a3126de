package configsync

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func fuzzRequest() *request {
	q := &request{Cluster: testCluster, Node: "n2", Service: "registry.opensvc.com", Sum: sha256.Sum256([]byte("x"))}
	q.Challenge[0], q.Nonce[31] = 1, 2
	return q
}

// FuzzDecodeRequest feeds the server's side of the wire garbage, as a
// byte stream off a connection: the frame reader, then the request
// decoder behind its tag check, and the body decoder directly, since a
// fuzzer never forges a tag. Nothing may panic; a frame read respects its
// limit; a request decoded respects the wire's limits and encodes back
// to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	reqKey := requestKey(testKey)
	frame, err := encodeRequest(reqKey, fuzzRequest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(binary.BigEndian.AppendUint32(nil, uint32(len(frame))))
	f.Add(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
	f.Add(frame)
	f.Add(frame[:len(frame)-macLen])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(encodeChallenge([nonceLen]byte{}))
	f.Add(encodeRefusal(refuseAuth))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = kindOf(data)
		_, _ = decodeChallenge(data)
		_, _ = decodeRefusal(data)
		if fr, err := readFrame(bytes.NewReader(data), maxRequestFrame); err == nil {
			if len(fr) > maxRequestFrame {
				t.Fatalf("read a frame of %d bytes over the %d limit", len(fr), maxRequestFrame)
			}
			if q, err := decodeRequest(reqKey, fr); err == nil {
				checkRequest(t, q)
			}
		}
		q, err := decodeRequestBody(data)
		if err != nil {
			return
		}
		checkRequest(t, q)
		b, err := encodeRequest(reqKey, q)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", q, err)
		}
		if !bytes.Equal(b[:len(b)-macLen], data) {
			t.Fatalf("decoded %+v encodes to other bytes", q)
		}
	})
}

func checkRequest(t *testing.T, q *request) {
	t.Helper()
	for _, s := range []string{q.Cluster, q.Node, q.Service} {
		if s == "" || len(s) > maxName {
			t.Fatalf("accepted a request out of the limits: %+v", q)
		}
	}
}

// FuzzDecodeReplyBody feeds the client's reply decoder garbage as it
// would come out of an authentic seal (a key holder gone wrong): nothing
// may panic, and a reply decoded has a known status, a bounded message,
// no content unless it is OK, and seals and opens back to itself.
func FuzzDecodeReplyBody(f *testing.F) {
	q := fuzzRequest()
	frame, err := encodeRequest(requestKey(testKey), q)
	if err != nil {
		f.Fatal(err)
	}
	seed := func(a *reply) []byte {
		opened, err := openReplyPlain(frame, q, sealReply(testKey, frame, q, a))
		if err != nil {
			f.Fatal(err)
		}
		return opened
	}
	f.Add(seed(&reply{Version: 3, Content: []byte("[DEFAULT]\nnodes = n1\n")}))
	f.Add(seed(&reply{Status: statusNotFound, Message: "node n1 has no service x"}))
	f.Add([]byte{})
	f.Add([]byte{numStatus})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeReplyBody(data)
		if err != nil {
			return
		}
		if a.Status >= numStatus || len(a.Message) > maxMessage || a.Status != statusOK && len(a.Content) != 0 {
			t.Fatalf("accepted a reply out of the limits: status %d, message of %d bytes, %d bytes of content", a.Status, len(a.Message), len(a.Content))
		}
		b, err := openReply(testKey, frame, q, sealReply(testKey, frame, q, a))
		if err != nil {
			t.Fatalf("a decoded reply does not seal and open: %v", err)
		}
		if b.Status != a.Status || b.Version != a.Version || b.Sum != a.Sum || b.Message != a.Message || !bytes.Equal(b.Content, a.Content) {
			t.Fatalf("reply %+v came back as %+v", a, b)
		}
	})
}

// openReplyPlain opens a reply frame to its plaintext, for the fuzz
// corpus.
func openReplyPlain(reqFrame []byte, q *request, frame []byte) ([]byte, error) {
	nonce := frame[headerLen : headerLen+gcmNonceLen]
	return replyAEAD(testKey, q.Challenge, q.Nonce).Open(nil, nonce, frame[headerLen+gcmNonceLen:], replyAD(reqFrame))
}
