package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"time"

	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/journal"
)

// alert runs every [alert#n] that wants e's kind, each in its own
// goroutine with its timeout: an alert never delays what emitted the
// event (a failover least of all). A failure is logged and counted.
func (d *Daemon) alert(e journal.Entry) {
	for _, a := range d.node.Alerts {
		if !a.Wants(e.Kind) {
			continue
		}
		go d.runAlert(a, e)
	}
}

func (d *Daemon) runAlert(a cluster.AlertConfig, e journal.Entry) {
	log := d.log.Named("alert").With("alert", a.Name, "kind", e.Kind)
	ctx, cancel := context.WithTimeout(context.Background(), a.Timeout)
	defer cancel()
	body, _ := json.Marshal(e)
	cmd := exec.CommandContext(ctx, a.Command)
	cmd.Env = alertEnv(d.node, e)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	begin := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	d.metrics.alertRun(a.Name, err == nil)
	if err != nil {
		d.ops.mu.Lock()
		d.ops.alertErr[a.Name]++
		d.ops.mu.Unlock()
		log.Error("alert command failed", "command", a.Command, "error", err, "took", time.Since(begin).Round(time.Millisecond), "output", tail(out.String(), 512))
		return
	}
	log.Debug("alert command ran", "command", a.Command, "took", time.Since(begin).Round(time.Millisecond))
}

// alertEnv is an alert command's environment: a fixed PATH and the event.
func alertEnv(n *cluster.NodeConfig, e journal.Entry) []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"VIGIL_CLUSTER=" + n.Cluster,
		"VIGIL_LOCAL_NODE=" + n.Local,
		"VIGIL_EVENT_KIND=" + e.Kind,
		"VIGIL_EVENT_NODE=" + e.Node,
		"VIGIL_EVENT_SERVICE=" + e.Service,
		"VIGIL_EVENT_MESSAGE=" + e.Message,
		"VIGIL_EVENT_TIME=" + e.Time.UTC().Format(time.RFC3339Nano),
		"VIGIL_EVENT_SEQ=" + itoa(e.Seq),
	}
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
