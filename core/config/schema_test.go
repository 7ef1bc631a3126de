package config

import (
	"errors"
	"strings"
	"testing"
)

func TestSchema_AddTypeRefusesConflicts(t *testing.T) {
	tests := []struct {
		name string
		t    *TypeSchema
		want string
		kind error
	}{
		{"duplicate type", &TypeSchema{Type: "fs", Plugin: "fs2"},
			`type "fs" (plugin "fs2"): already served by plugin "fs"`, ErrSchemaConflict},
		{"section alias owned by another plugin", &TypeSchema{Type: "disk.zvg", Plugin: "zfs", SectionAliases: []string{"vg"}},
			`section alias "vg" already selects disk.vg (plugin "lvm")`, ErrSchemaConflict},
		{"section alias that is a group", &TypeSchema{Type: "container.podman", Plugin: "podman", SectionAliases: []string{"container"}},
			`section alias "container" is reserved`, ErrSchemaConflict},
		{"not a resource group", &TypeSchema{Type: "hb.disk", Plugin: "hb-disk"},
			`"hb" is not a resource group`, ErrNotResourceType},
		{"bad type name", &TypeSchema{Type: "Container.Docker"},
			`a type is <group>.<driver>`, ErrSchemaKeyword},
		{"group mismatch", &TypeSchema{Type: "disk.zpool", Group: "fs"},
			`group "fs" does not match`, ErrSchemaKeyword},
		{"keyword shadows a common one", &TypeSchema{Type: "app.simple", Plugin: "app", Keywords: []Keyword{{Name: "monitor"}}},
			`"monitor" is already the common resource keyword monitor`, ErrSchemaConflict},
		{"type keyword on a driver type", &TypeSchema{Type: "app.simple", Keywords: []Keyword{{Name: "type"}}},
			`"type" is already the section's type selector`, ErrSchemaConflict},
		{"alias clashes inside the type", &TypeSchema{Type: "app.simple", Keywords: []Keyword{
			{Name: "start"}, {Name: "begin", Aliases: []string{"start"}}}},
			`keyword "begin": "start" is already keyword start`, ErrSchemaConflict},
		{"unknown keyword type", &TypeSchema{Type: "app.simple", Keywords: []Keyword{{Name: "x", Type: "float"}}},
			`unknown type "float"`, ErrSchemaKeyword},
		{"bad default", &TypeSchema{Type: "app.simple", Keywords: []Keyword{{Name: "x", Type: Int, Default: "many"}}},
			`default: "many" is not an integer`, ErrSchemaKeyword},
		{"default outside candidates", &TypeSchema{Type: "app.simple", Keywords: []Keyword{{Name: "x", Default: "c", Candidates: []string{"a", "b"}}}},
			`"c" is not one of a, b`, ErrSchemaKeyword},
		{"required with default", &TypeSchema{Type: "app.simple", Keywords: []Keyword{{Name: "x", Required: true, Default: "a"}}},
			`a required keyword cannot have a default`, ErrSchemaKeyword},
		{"uppercase keyword", &TypeSchema{Type: "app.simple", Keywords: []Keyword{{Name: "Start"}}},
			`use lowercase letters`, ErrSchemaKeyword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSchema()
			err := s.AddType(tt.t)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddType error = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.kind)
			}
			if tt.t.Type != "fs" && s.Types[tt.t.Type] != nil {
				t.Error("a refused type was registered")
			}
		})
	}
}

func TestSchema_AddTypeKeepsACopy(t *testing.T) {
	s := CoreSchema()
	in := &TypeSchema{Type: "app.simple", Plugin: "app", Keywords: []Keyword{{Name: "script"}}}
	if err := s.AddType(in); err != nil {
		t.Fatal(err)
	}
	in.Keywords[0].Name = "changed"
	got := s.Types["app.simple"]
	if got.Group != "app" || got.Keywords[0].Name != "script" || got.Keywords[0].Type != String {
		t.Errorf("stored type = %+v", got)
	}
	if in.Group != "" {
		t.Error("AddType changed its argument")
	}
}

func TestSchema_AddServiceKeywordsRefusesClashes(t *testing.T) {
	tests := []struct {
		name   string
		plugin string
		kws    []Keyword
		want   string
	}{
		{"core keyword", "x", []Keyword{{Name: "nodes"}}, `"nodes" is already core's service keyword nodes`},
		{"core alias", "x", []Keyword{{Name: "envx", Aliases: []string{"env"}}}, `"env" is already core's service keyword env`},
		{"other plugin", "podman", []Keyword{{Name: "docker_data_dir"}}, `service keyword docker_data_dir of plugin "docker"`},
		{"within the call", "x", []Keyword{{Name: "a"}, {Name: "a"}}, `"a" is already keyword a`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSchema()
			n := len(s.Service)
			err := s.AddServiceKeywords(tt.plugin, tt.kws)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrSchemaConflict) {
				t.Errorf("errors.Is(%v, ErrSchemaConflict) = false", err)
			}
			if len(s.Service) != n {
				t.Error("a refused keyword was added")
			}
		})
	}
}

func TestSchema_ZeroValueAcceptsTypes(t *testing.T) {
	var s Schema
	if err := s.AddType(&TypeSchema{Type: "ip"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddServiceKeywords("p", []Keyword{{Name: "k"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("s.env", []byte("[DEFAULT]\nk = v\n[ip#1]\n"), &s); err != nil {
		t.Fatal(err)
	}
}

func TestValues_ParseLikeTheSDK(t *testing.T) {
	tests := []struct {
		typ   KeywordType
		value string
		ok    bool
	}{
		{Bool, "true", true}, {Bool, "No", true}, {Bool, " on ", true}, {Bool, "0", true},
		{Bool, "y", true}, {Bool, "", true}, {Bool, "maybe", false},
		{Int, "12", true}, {Int, "-3", true}, {Int, "1.5", false}, {Int, "", false},
		{Duration, "10", true}, {Duration, "1.5", true}, {Duration, "1m30s", true}, {Duration, "", true},
		{Duration, "-1s", false}, {Duration, "-1", false}, {Duration, "ten", false}, {Duration, "inf", false},
		{Duration, "NaN", false}, {Duration, "1e300", false},
		{Size, "512", true}, {Size, "10M", true}, {Size, "1.5GiB", true}, {Size, "2 kb", true},
		{Size, "-1", false}, {Size, "M", false}, {Size, "10X", false}, {Size, "1e30", false},
		{List, "a b  c", true}, {String, "anything at all", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.value, func(t *testing.T) {
			err := checkValue(&Keyword{Name: "k", Type: tt.typ}, tt.value)
			if (err == nil) != tt.ok {
				t.Errorf("checkValue(%s, %q) = %v, want ok=%v", tt.typ, tt.value, err, tt.ok)
			}
		})
	}
}

func TestSuggest_OnlyWhenClose(t *testing.T) {
	names := []string{"mnt", "mnt_opt", "dev", "type", "run_image", "ipname"}
	tests := []struct{ word, want string }{
		{"mnt_opts", "mnt_opt"},
		{"MNT_OPT", "mnt_opt"},
		{"run_imag", "run_image"},
		{"ipnmae", "ipname"},
		{"dve", ""}, // two edits on a three-letter word is a different word
		{"devv", "dev"},
		{"completely_else", ""},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			if got := suggest(tt.word, names); got != tt.want {
				t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}
