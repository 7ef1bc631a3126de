package sdk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrInsecureSecretFile: a secret file (cluster.conf's secret_file, a
// fencing password_file) may be read or changed by someone other than its
// owner, or its owner is neither root nor the user vigil runs as.
var ErrInsecureSecretFile = errors.New("secret file is not private")

// ReadSecretFile reads a file holding a secret, refusing it, as OpenSSH's
// StrictModes does, unless it is a regular file owned by root (or by the
// user this process runs as, which is root for vigild) that neither group
// nor others may read or write. Core reads the cluster secret and the
// fencing plugins their passwords with it, so every secret obeys one rule.
//
// The checks are made on the opened file, so a rename between check and
// read cannot swap it; a symlink is followed and its target checked.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError: names the path
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s)", ErrInsecureSecretFile, path, fi.Mode().Type())
	}
	uid := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = int(st.Uid)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 != 0 || (uid != 0 && uid != os.Geteuid()) {
		return nil, fmt.Errorf("%w: %s is mode %04o, owned by uid %d; it must be owned by root and readable by root alone: chmod 600 %s; chown root %s",
			ErrInsecureSecretFile, path, perm, uid, path, path)
	}
	return io.ReadAll(f)
}
