package plugin

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPluginLog_OneTimestampTheNodeAndAQuietClose: a forwarded plugin line
// has one time (the host's), carries the host's fields, and the exits
// Close causes are not errors.
func TestPluginLog_OneTimestampTheNodeAndAQuietClose(t *testing.T) {
	dir := t.TempDir()
	buildPlugin(t, dir, "testplugin", "test")
	var buf lockedBuf
	h := New(Config{Dir: dir, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &buf})})
	h.LogWith("node", "n1")
	d, err := h.Driver(context.Background(), "app.test")
	if err != nil {
		t.Fatal(err)
	}
	d.Status(context.Background(), testRequest(t.TempDir()+"/m", nil))
	h.Close()
	out := buf.String()
	var forwarded int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "timestamp=") {
			t.Errorf("a line with a second timestamp: %s", l)
		}
		if strings.Contains(l, "plugin process exited") && strings.Contains(l, "[ERROR]") {
			t.Errorf("Close's kill logged as an error: %s", l)
		}
		if strings.Contains(l, "plugin address") {
			forwarded++
			if !strings.Contains(l, "node=n1") {
				t.Errorf("a plugin's line without the node: %s", l)
			}
		}
	}
	if forwarded == 0 {
		t.Fatalf("no line forwarded from the plugin in:\n%s", out)
	}
}
