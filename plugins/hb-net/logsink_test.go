package hbnet

import (
	"log"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestClassifyLogLine(t *testing.T) {
	tests := []struct {
		line, class, detailsHave string
	}{
		{"[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=127.0.0.4:7946", rejectBadTag, "from 127.0.0.4:7946"},
		{"[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:40122", rejectBadTag, "from 10.0.0.9:40122"},
		{"[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:1", rejectUnencrypted, "without the cluster secret"},
		{"[WARN] memberlist: Got invalid checksum for UDP packet: 1, 2", rejectMalformed, "bad checksum"},
		{"[ERR] memberlist: discarding packet with unacceptable label \"x\": from=10.0.0.9:1", rejectForeign, "another cluster label"},
		{"[ERR] memberlist: failed to receive: remote node state is larger than limit (4294967295) from=10.0.0.9:3", rejectMalformed, "from 10.0.0.9:3"},
		{"[ERR] memberlist: cannot decode label; packet has been truncated from=10.0.0.9:4", rejectMalformed, "damaged label header"},
		{"[ERR] memberlist: failed to receive and remove the stream label header: label header cannot be empty when present from=10.0.0.9:5", rejectMalformed, "from 10.0.0.9:5"},
		{"[DEBUG] memberlist: Failed to join 10.0.0.2:7946: remote error: no installed keys could decrypt the message", "", ""},
		{"[INFO] memberlist: Marking n2 as failed, suspect timeout reached", "", ""},
		{"[ERR] memberlist: Failed to send gossip to 10.0.0.2:7946: connection refused", "", ""},
	}
	for _, tt := range tests {
		class, _, details, ok := classifyLogLine(tt.line)
		if ok != (tt.class != "") || class != tt.class || !strings.Contains(details, tt.detailsHave) {
			t.Errorf("classify(%q) = %q, %q, %v; want class %q, details with %q", tt.line, class, details, ok, tt.class, tt.detailsHave)
		}
	}
}

func TestLogSink_RejectsThroughAStdLogger(t *testing.T) {
	var got []string
	sink := &logSink{log: hclog.NewNullLogger(), reject: func(class, via, peer, details string) { got = append(got, class) }}
	l := log.New(sink, "", 0)
	l.Printf("[ERR] memberlist: Decrypt packet failed: %v %s", "no installed keys could decrypt the message", "from=127.0.0.9:1")
	l.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.9:2")
	if len(got) != 1 || got[0] != rejectBadTag {
		t.Errorf("rejects = %v, want [%s]", got, rejectBadTag)
	}
}

func TestLimiter_OnePerKeyPerPeriod(t *testing.T) {
	l := newLimiter(time.Second)
	t0 := time.Unix(0, 0)
	if !l.allow("a", t0) || l.allow("a", t0.Add(999*time.Millisecond)) || !l.allow("b", t0) || !l.allow("a", t0.Add(time.Second)) {
		t.Error("limiter does not let exactly one event per key per second through")
	}
}
