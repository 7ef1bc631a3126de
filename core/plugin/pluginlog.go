package plugin

import (
	"slices"

	"github.com/hashicorp/go-hclog"
)

// pluginLog is the logger go-plugin gets for a plugin process: what it
// forwards from the plugin's stderr and what it says of the process. It
// adjusts three things on the way to the host's logger:
//   - a plugin line comes with the plugin's own "timestamp" pair, and the
//     host's logger stamps it again: the pair is dropped, the line keeps
//     one time;
//   - "plugin process exited" is an error when the host killed it on
//     purpose (Close): it is logged at debug then, so a failed svcmgr
//     start does not print one line per plugin before its error;
//   - the host's fields (LogWith: vigild's node name) are added, so a
//     plugin's line says which node it comes from.
type pluginLog struct {
	hclog.Logger
	host *Host
}

var _ hclog.Logger = pluginLog{}

func (l pluginLog) args(args []any) []any {
	out := make([]any, 0, len(args)+2)
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "timestamp" {
			continue
		}
		out = append(out, args[i], args[i+1])
	}
	if len(args)%2 == 1 {
		out = append(out, args[len(args)-1])
	}
	if f, _ := l.host.logWith.Load().([]any); len(f) > 0 {
		out = append(slices.Clone(f), out...)
	}
	return out
}

func (l pluginLog) level(level hclog.Level, msg string) hclog.Level {
	if msg == "plugin process exited" && l.host.closing.Load() {
		return hclog.Debug
	}
	return level
}

// Log implements hclog.Logger.
func (l pluginLog) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(l.level(level, msg), msg, l.args(args)...)
}

// Trace implements hclog.Logger.
func (l pluginLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (l pluginLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (l pluginLog) Info(msg string, args ...any) { l.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (l pluginLog) Warn(msg string, args ...any) { l.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (l pluginLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

// With implements hclog.Logger.
func (l pluginLog) With(args ...any) hclog.Logger {
	return pluginLog{Logger: l.Logger.With(args...), host: l.host}
}

// Named implements hclog.Logger.
func (l pluginLog) Named(name string) hclog.Logger {
	return pluginLog{Logger: l.Logger.Named(name), host: l.host}
}

// ResetNamed implements hclog.Logger.
func (l pluginLog) ResetNamed(name string) hclog.Logger {
	return pluginLog{Logger: l.Logger.ResetNamed(name), host: l.host}
}

// LogWith adds key/value pairs to every line forwarded from plugins, from
// now on (vigild: the node's name, known once cluster.conf is read, which
// takes the plugins' keywords).
func (h *Host) LogWith(args ...any) { h.logWith.Store(slices.Clone(args)) }
