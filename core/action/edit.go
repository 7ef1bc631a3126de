package action

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/core/config"
)

// What svcmgr set accepts as a section and a keyword: a name, never
// something the INI syntax reads otherwise (a comment, a header).
var (
	sectionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*#[A-Za-z0-9_-]+$`)
	keywordName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// SetKeywords applies "key=value" assignments to a service's config file
// and returns the new content, validated as a whole: a change that does
// not validate comes back as an error and nothing is written. A key is
// "keyword" for [DEFAULT] or "<section>.<keyword>" ("fs#1.mnt_opt=ro").
func (e *Engine) SetKeywords(ctx context.Context, path string, kv []string) ([]byte, error) {
	if len(kv) == 0 {
		return nil, fmt.Errorf("nothing to set: give KEY=VALUE (e.g. orchestrate=ha or fs#1.mnt_opt=ro)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read service config: %w", err)
	}
	f, err := config.ParseINI(path, data)
	if err != nil {
		return nil, err
	}
	for _, a := range kv {
		key, value, ok := strings.Cut(a, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("%q: write KEY=VALUE (e.g. orchestrate=ha or fs#1.mnt_opt=ro)", a)
		}
		section := config.DefaultSection
		if i := strings.LastIndexByte(key, '.'); i > 0 && strings.Contains(key[:i], "#") {
			section, key = key[:i], key[i+1:]
			if !sectionName.MatchString(section) {
				return nil, fmt.Errorf("%q: %q is not a resource section's name (<driver>#<id>, e.g. fs#1.mnt_opt=ro)", a, section)
			}
		}
		// A name only: "#x" would be written as a comment line, and the
		// file would validate with the change silently lost.
		if key = strings.ToLower(key); !keywordName.MatchString(key) {
			return nil, fmt.Errorf("%q: %q is not a keyword name (letters, digits and '_', starting with a letter; e.g. orchestrate=ha or fs#1.mnt_opt=ro)", a, key)
		}
		if strings.ContainsAny(value, "\n\r") {
			return nil, fmt.Errorf("%q: a value is one line", a)
		}
		if err := config.CheckValue(strings.TrimSpace(value)); err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
		// A section set would add is refused: validating it would cite
		// lines past the end of the file on disk, and a resource is a
		// set of keywords written together.
		if section != config.DefaultSection && f.Section(section) == nil {
			var names []string
			for _, s := range f.Sections {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("%q: %s has no [%s] section (its sections: %s); set changes keywords of existing sections: to add a resource, edit the file, then svcmgr -s NAME config commit",
				a, path, section, strings.Join(names, ", "))
		}
		f.Set(section, key, strings.TrimSpace(value))
	}
	out := f.Bytes()
	if _, err := e.Parse(ctx, path, out); err != nil {
		return nil, err
	}
	return out, nil
}

// WriteFileAtomic replaces path with data so a reader sees the old file or
// the new one, never a mix, even across a crash: temp file, fsync, rename,
// fsync of the directory. A non-zero mtime is set on the new file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode, mtime time.Time) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp.Name(), mtime, mtime); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
