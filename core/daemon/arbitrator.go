package daemon

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/core/arbitrator"
	"github.com/vigil-ha/vigil/core/node"
)

// arbitratorGrants is what this node holds of each arbitrator's vote: the
// last grant, which counts until it expires and only for the side it was
// granted for (see core/arbitrator for why that makes the vote one
// side's at a time). The zero value holds nothing.
type arbitratorGrants struct {
	mu    sync.Mutex
	votes map[string]arbitrator.Vote // arbitrator address → its last grant
}

func (g *arbitratorGrants) store(addr string, v arbitrator.Vote) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.votes == nil {
		g.votes = map[string]arbitrator.Vote{}
	}
	g.votes[addr] = v
}

// count is how many votes count at now for a side that sees set: expiry is
// judged here, when quorum is decided, not when the votes were asked.
func (g *arbitratorGrants) count(now time.Duration, set []string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, v := range g.votes {
		if v.Valid(now, set) {
			n++
		}
	}
	return n
}

// aliveSet is this node's side (node.Side), the form an arbitrator is
// asked with.
func (d *Daemon) aliveSet() []string {
	return arbitrator.NormalizeSet(node.Side(d.node.Local, d.view.Snapshot().Peers))
}

// arbitratorVotesNow is how many arbitrator votes this node's side holds
// now: unexpired, granted for the set it sees now.
func (d *Daemon) arbitratorVotesNow() int {
	if len(d.node.Arbitrators) == 0 {
		return 0
	}
	return d.arbitratorVotes.count(arbitrator.Now(), d.aliveSet())
}

// askArbitrators asks every arbitrator for its vote, each every interval
// on its own (a dead one does not delay the others), until ctx ends.
func (d *Daemon) askArbitrators(ctx context.Context, every time.Duration) {
	var wg sync.WaitGroup
	for _, addr := range d.node.Arbitrators {
		wg.Go(func() { d.askArbitrator(ctx, addr, every) })
	}
	wg.Wait()
}

// askArbitrator renews one arbitrator's vote for the side this node sees,
// every interval. A denial or no answer changes nothing held: the last
// grant counts until it expires. Only changes are logged.
func (d *Daemon) askArbitrator(ctx context.Context, addr string, every time.Duration) {
	log := d.log.Named("arbitrator").With("arbitrator", addr)
	c := arbitrator.NewClient(arbitrator.ClientConfig{Addr: addr, Key: d.node.Key(arbitrator.KeyUse),
		Cluster: d.node.Cluster, Node: d.node.Local, Timeout: max(every, time.Second)})
	t := time.NewTicker(every)
	defer t.Stop()
	last := ""
	for {
		set := d.aliveSet()
		v, err := c.Ask(ctx, set)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if last != "unreachable" {
				log.Warn("arbitrator unreachable: the vote it gave counts until its lease ends", "error", err)
			}
			last = "unreachable"
		case v.Granted:
			d.arbitratorVotes.store(addr, v)
			if now := "granted " + strings.Join(set, ","); last != now {
				log.Info("arbitrator vote granted", "set", strings.Join(set, ","))
				last = now
			}
		default:
			if !strings.HasPrefix(last, "denied") {
				log.Info("arbitrator vote denied", "set", strings.Join(set, ","), "reason", v.Reason)
			}
			last = "denied"
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
