// Package config reads a service's configuration file and checks it
// against a keyword schema.
//
// It owns the INI dialect of service files (sections, keys, continuation
// lines, with line numbers kept for messages and comments kept for
// rewriting), the keyword schema (core's own keywords plus whatever the
// plugins declared at handshake), the resolution of a section to a
// resource type, aliases, value validation, and the errors that report
// all of a file's problems at once with file, line and section.
//
// It must not do I/O beyond reading the file it is asked to load, and it
// knows nothing about plugin processes: the plugin host turns what
// plugins declare into TypeSchema and Keyword values and adds them to a
// Schema. Build the Schema once, then share it read-only; it is not safe
// to add types while another goroutine parses.
package config
