package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/core/action"
	"github.com/vigil-ha/vigil/core/cluster"
	"github.com/vigil-ha/vigil/core/plugin"
)

// docBlock is one config example of the documentation.
type docBlock struct {
	file string
	line int
	text string
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// heredocConf matches the tour's `cat > $T/etc/NAME.conf <<EOF`.
var heredocConf = regexp.MustCompile(`^cat > \S+\.conf <<'?EOF'?$`)

// docBlocks returns every ```ini block of the markdown file, and every
// heredoc writing a .conf file inside its ```sh blocks (the tour).
func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rel, _ := filepath.Rel(repoRoot(t), path)
	var out []docBlock
	var cur *docBlock
	end := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == end:
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.TrimSpace(line) == "```ini":
			cur, end = &docBlock{file: rel, line: n + 1}, "```"
		case heredocConf.MatchString(strings.TrimSpace(line)):
			cur, end = &docBlock{file: rel, line: n + 1}, "EOF"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDocs_EveryConfigExampleLoads loads every config block of README.md
// and docs/*.md as vigild would: a block with a [cluster] section (or only
// hb, stonith and arbitrator sections) through the cluster.conf loader,
// any other through the service parser and the plugins' schemas. An
// example that stops loading fails here, naming its file and line.
func TestDocs_EveryConfigExampleLoads(t *testing.T) {
	root := repoRoot(t)
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append([]string{filepath.Join(root, "README.md")}, docs...)
	var blocks []docBlock
	for _, d := range docs {
		blocks = append(blocks, docBlocks(t, d)...)
	}
	if len(blocks) < 2 {
		t.Fatalf("found %d config blocks in %v, want the README's tour and cluster.conf at least", len(blocks), docs)
	}

	n := newNode(t)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	host := plugin.New(plugin.Config{Dir: n.pluginDir, Logger: log})
	t.Cleanup(host.Close)
	eng := action.New(action.Config{Plugins: host, RunDir: n.runDir, StateDir: n.stateDir, Logger: log})
	ctx := context.Background()
	infos, _, err := host.Plugins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What the examples name on this host: a secret and password files
	// (root's, 0600) in a config directory of our own, the tour's shell
	// variables.
	etc := t.TempDir()
	host1, _ := os.Hostname()
	shell := strings.NewReplacer("$(hostname)", host1, "$DEV", "/dev/null", "$T", t.TempDir())
	for i, b := range blocks {
		t.Run(b.String(), func(t *testing.T) {
			text := shell.Replace(b.text)
			path := filepath.Join(etc, fmt.Sprintf("doc%d.conf", i))
			if isClusterConf(text) {
				text = localizeClusterConf(t, text, etc)
				if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := cluster.LoadNodeConfig(path, cluster.KeywordsOf(infos)); err != nil {
					t.Fatalf("%s does not load as a cluster.conf:\n%v\n--- the block as loaded:\n%s", b, err, text)
				}
				return
			}
			if _, err := eng.Parse(ctx, path, []byte(text)); err != nil {
				t.Fatalf("%s does not load as a service file:\n%v\n--- the block as loaded:\n%s", b, err, text)
			}
		})
	}
}

var clusterSection = regexp.MustCompile(`(?m)^\s*\[(cluster|hb#[^\]]*|stonith#[^\]]*|arbitrator#[^\]]*)\]`)

func isClusterConf(text string) bool { return clusterSection.MatchString(text) }

// localizeClusterConf makes a cluster.conf example loadable here, changing
// only what names this host: files under /etc/vigil move to etc (and are
// made, root's and private), node = names the first of nodes, and a
// fragment without [cluster] gets a two-node one.
func localizeClusterConf(t *testing.T, text, etc string) string {
	t.Helper()
	if !regexp.MustCompile(`(?m)^\s*\[cluster\]`).MatchString(text) {
		text = "[cluster]\nname = doc\nnodes = n1 n2\nsecret_file = /etc/vigil/cluster.secret\n\n" + text
	}
	text = strings.ReplaceAll(text, "/etc/vigil/", etc+"/")
	for _, m := range regexp.MustCompile(`(?m)^\s*\w+_file\s*=\s*(\S+)`).FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat(m[1]); err == nil {
			continue
		}
		if err := os.WriteFile(m[1], []byte(hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*node\s*=`).MatchString(text) {
		nodes := regexp.MustCompile(`(?m)^\s*nodes\s*=\s*(\S+)`).FindStringSubmatch(text)
		if nodes != nil {
			text = regexp.MustCompile(`(?m)^(\s*)\[cluster\].*$`).ReplaceAllString(text, "$0\nnode = "+nodes[1])
		}
	}
	return text
}
