package config

// testSchema is core's schema plus the four built-in types as their
// plugins declare them. It stands in for the plugin host, which fills a
// schema from the plugins' handshakes; the real plugins are not needed to
// check a file.
func testSchema() *Schema {
	s := CoreSchema()
	types := []*TypeSchema{
		{Type: "container.docker", Plugin: "docker", Keywords: []Keyword{
			{Name: "run_image", Required: true, Aliases: []string{"image"}, Help: "Image to run."},
			{Name: "run_args", Help: "docker run arguments."},
			{Name: "run_command", Help: "Command run in the container."},
		}},
		{Type: "fs", Plugin: "fs", Keywords: []Keyword{
			{Name: "dev", Required: true, Help: "Block device."},
			{Name: "mnt", Required: true, Help: "Mount point."},
			{Name: "type", Required: true, Help: "Filesystem type."},
			{Name: "mnt_opt", Help: "Mount options."},
		}},
		{Type: "ip", Plugin: "ip", Keywords: []Keyword{
			{Name: "ipname", Required: true, Aliases: []string{"name"}, Help: "Address or resolvable name."},
			{Name: "ipdev", Required: true, Aliases: []string{"dev"}, Help: "Interface."},
			{Name: "netmask"},
		}},
		{Type: "disk.vg", Plugin: "lvm", SectionAliases: []string{"vg"}, Keywords: []Keyword{
			{Name: "vgname", Required: true, Aliases: []string{"name"}, Help: "Volume group."},
			{Name: "scsireserv", Type: Bool, Default: "false", Aliases: []string{"scsi_reserve"}},
		}},
	}
	for _, t := range types {
		if err := s.AddType(t); err != nil {
			panic(err)
		}
	}
	if err := s.AddServiceKeywords("docker", []Keyword{
		{Name: "docker_data_dir", Help: "Data directory of the service's docker daemon."},
		{Name: "docker_daemon_args"},
	}); err != nil {
		panic(err)
	}
	return s
}
