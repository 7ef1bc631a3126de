package cluster

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-ha/vigil/core/config"
	"github.com/vigil-ha/vigil/core/plugin"
)

// ErrNoFencing: a service with orchestrate = ha has a node without a
// fencing method and does not opt out with stonith = false.
var ErrNoFencing = errors.New("orchestrate = ha needs a fencing method for every node of the service")

// CheckFencing refuses orchestrate = ha when a node of the service has no
// [stonith#node] section, unless the service sets stonith = false itself:
// without fencing, a frozen or partitioned owner resumes beside the taker.
// A cluster of one needs none.
func (c *NodeConfig) CheckFencing(svc *config.Service) error {
	if svc.Keywords["orchestrate"] != "ha" || svc.Keywords["stonith"] == "false" || len(c.Nodes) < 2 {
		return nil
	}
	var missing []string
	for _, n := range strings.Fields(svc.Keywords["nodes"]) {
		if _, ok := c.Stonith[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w: none for %s in %s; add a [stonith#%s] section there, or set stonith = false in [DEFAULT] to run it unfenced",
		svc.Path, ErrNoFencing, strings.Join(missing, ", "), c.Path, missing[0])
}

// KeywordsOf gives LoadNodeConfig the keywords the plugins declare.
func KeywordsOf(infos []plugin.Info) PluginKeywords {
	return func(typ string) ([]config.Keyword, bool) {
		for _, in := range infos {
			for _, t := range in.Types {
				if t.Type == typ {
					var out []config.Keyword
					for _, k := range t.Keywords {
						out = append(out, config.Keyword{Name: k.Name, Type: config.KeywordType(k.Type), Default: k.Default,
							Required: k.Required, Aliases: k.Aliases, Help: k.Help, Candidates: k.Candidates})
					}
					return out, true
				}
			}
		}
		return nil, false
	}
}
