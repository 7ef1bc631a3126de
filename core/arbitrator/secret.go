package arbitrator

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/vigil-ha/vigil/core/cluster"
)

// KeyUse is the purpose the arbitrator's key is derived for: a node
// derives it with cluster.NodeConfig.Key(KeyUse).
const KeyUse = "arbitrator"

// Key derives the arbitrator's key from the cluster secret, as
// cluster.NodeConfig.Key(KeyUse) does: the arbitrator's host has the
// secret but no node config.
func Key(secret []byte, clusterName string) []byte {
	return cluster.DeriveKey(secret, clusterName, KeyUse)
}

// ParseSecret reads a secret as cluster.conf holds it: hex, at least 16
// bytes, surrounding blanks ignored.
func ParseSecret(b []byte) ([]byte, error) {
	s, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(s) < 16 {
		return nil, fmt.Errorf("give at least 16 bytes as hex (e.g. openssl rand -hex 32)")
	}
	return s, nil
}

// CheckSecretFile refuses a file holding a secret that a group or other
// users may read or write, or that owner does not own.
func CheckSecretFile(path string, owner int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("secret file: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("secret file %s has mode %04o: users other than its owner may read it; run chmod 600 %s", path, m, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != owner {
		return fmt.Errorf("secret file %s is owned by uid %d, not %d: run chown %d %s", path, st.Uid, owner, owner, path)
	}
	return nil
}

// ReadSecretFile reads a secret file that passes CheckSecretFile.
func ReadSecretFile(path string, owner int) ([]byte, error) {
	if err := CheckSecretFile(path, owner); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	s, err := ParseSecret(b)
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	return s, nil
}
