package sdk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFile_RefusesFilesOthersCanReadOrWrite(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		owner  int // -1: the test's own user
		refuse string
	}{
		{"0600 is read", 0o600, -1, ""},
		{"0400 is read", 0o400, -1, ""},
		{"group readable", 0o640, -1, "mode 0640"},
		{"world readable", 0o644, -1, "mode 0644"},
		{"group writable", 0o620, -1, "mode 0620"},
		{"world writable only", 0o602, -1, "mode 0602"},
		{"owned by another user", 0o600, 65534, "owned by uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && !root {
				t.Skip("giving a file to another user needs root")
			}
			p := filepath.Join(t.TempDir(), "cluster.secret")
			if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.owner >= 0 {
				if err := os.Chown(p, tc.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			b, err := ReadSecretFile(p)
			if tc.refuse == "" {
				if err != nil || string(b) != "s3cret\n" {
					t.Fatalf("ReadSecretFile = %q, %v", b, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("a secret file with %s was read", tc.refuse)
			}
			if !errors.Is(err, ErrInsecureSecretFile) {
				t.Errorf("want ErrInsecureSecretFile, got %v", err)
			}
			for _, want := range []string{p, tc.refuse, "chmod 600 " + p, "chown root " + p} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if b != nil {
				t.Errorf("the refused file's content came back")
			}
		})
	}
}

func TestReadSecretFile_ChecksTheFileASymlinkNames(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecretFile(link); !errors.Is(err, ErrInsecureSecretFile) {
		t.Fatalf("a 0600-looking symlink to a 0644 file was read: %v", err)
	}
}

func TestReadSecretFile_RefusesADirectoryAndNamesAMissingFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecretFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	missing := filepath.Join(dir, "none")
	if _, err := ReadSecretFile(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing file: %v", err)
	}
}
