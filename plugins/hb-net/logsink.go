package hbnet

import (
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// logSink is the writer behind memberlist's log.Logger. memberlist drops
// traffic it cannot decrypt or verify and only logs it; the sink turns
// those lines into rejects, and forwards every line to our logger at
// debug (memberlist is chatty at the rates a 1 s timeout needs).
type logSink struct {
	log    hclog.Logger
	reject func(class, via, peer, details string)
}

// Write receives one log line per call (log.Logger guarantees it).
func (w *logSink) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, msg := splitLevel(line)
	w.log.Debug(msg, "level", level)
	if class, via, details, ok := classifyLogLine(line); ok {
		w.reject(class, via, "", details)
	}
	return len(p), nil
}

// splitLevel separates "[ERR] memberlist: text" into "ERR" and "text".
func splitLevel(line string) (level, msg string) {
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, line = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}

var fromRE = regexp.MustCompile(`from=(\S+)`)

// classifyLogLine recognizes the memberlist lines that mean refused
// traffic, and returns the reject class, where it was refused (packet
// or stream) and the details. Class and via key the rate limit, and the
// class core's count, so they never contain the address: a flood from
// many sources is still one reject a second, one count key.
func classifyLogLine(line string) (class, via, details string, ok bool) {
	if !strings.Contains(line, "[ERR]") && !strings.Contains(line, "[WARN]") {
		return "", "", "", false
	}
	from := "an unknown sender"
	if m := fromRE.FindStringSubmatch(line); m != nil {
		from = m[1]
	}
	lower := strings.ToLower(line)
	switch {
	case strings.Contains(lower, "decrypt packet failed"):
		return rejectBadTag, "packet", "dropped a packet from " + from + " that the heartbeat key does not decrypt (a node with another cluster secret?)", true
	case strings.Contains(lower, "decrypt"):
		return rejectBadTag, "stream", "dropped a connection from " + from + " that the heartbeat key does not decrypt (a node with another cluster secret?)", true
	case strings.Contains(lower, "not encrypted"), strings.Contains(lower, "encryption is not configured"):
		return rejectUnencrypted, "any", "dropped unencrypted traffic from " + from + " (a node without the cluster secret?)", true
	case strings.Contains(lower, "invalid checksum"):
		return rejectMalformed, "packet", "dropped a packet with a bad checksum", true
	case strings.Contains(lower, "larger than limit"):
		return rejectMalformed, "stream", "dropped a connection from " + from + " announcing more state than memberlist accepts", true
	case strings.Contains(lower, "unacceptable label"):
		return rejectForeign, "label", "dropped traffic from " + from + " with another cluster label", true
	case strings.Contains(lower, "label header"), strings.Contains(lower, "cannot decode label"):
		return rejectMalformed, "label", "dropped traffic from " + from + " with a damaged label header", true
	}
	return "", "", "", false
}

// limiter lets one event per key through per period. Keys come from a
// bounded set (reject classes, each with the cluster's node names), and
// the map is reset if it ever grows past maxLimiterKeys.
type limiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

const maxLimiterKeys = 1024

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, last: make(map[string]time.Time)}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if len(l.last) >= maxLimiterKeys {
		l.last = make(map[string]time.Time)
	}
	l.last[key] = now
	return true
}
