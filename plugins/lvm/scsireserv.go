package lvm

// SCSI-3 persistent reservations (SPC-4 5.13) on the physical volumes of a
// volume group, for `scsireserv = true`.
//
// The host tag keeps a well-behaved node from activating a group it does
// not own; a reservation keeps a node that is not behaving (hung, cut off,
// not yet fenced) from writing at all: the disk itself refuses its writes.
// On start this node registers its key on every PV and holds a Write
// Exclusive – Registrants Only reservation (type 5), so that only
// registered nodes may write; any other node's registration is preempted
// with PREEMPT AND ABORT, which also aborts the commands that node still
// has queued. On stop it releases the reservation and unregisters.
//
// The reservation key of a node is, unless scsireserv_key names one, the
// first 8 bytes (big-endian) of sha256("vigil:" + host name): stable across
// restarts, distinct between nodes, and computable by an operator who needs
// to recognise it in `sg_persist --in --read-keys` output.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/vigil-ha/vigil/plugins/sdk"
)

// ErrReservationConflict: the device answered RESERVATION CONFLICT, the
// status SPC-4 gives to a command that the registrations or the
// reservation do not allow (e.g. RESERVE from an unregistered initiator).
var ErrReservationConflict = errors.New("reservation conflict")

// ErrIllegalRequest: the device refused the command's fields, e.g. a
// RELEASE whose type is not the reservation's.
var ErrIllegalRequest = errors.New("illegal request")

// ErrPRNotSupported: the device does not take PERSISTENT RESERVE commands.
var ErrPRNotSupported = errors.New("device does not support SCSI persistent reservations")

// prType is a persistent reservation type code (SPC-4 table "Persistent
// reservation type codes"), as given to sg_persist --prout-type.
type prType uint8

// The reservation types SPC-4 defines; 0, 2 and 4 are obsolete.
const (
	prWriteExclusive                 prType = 1
	prExclusiveAccess                prType = 3
	prWriteExclusiveRegistrantsOnly  prType = 5
	prExclusiveAccessRegistrantsOnly prType = 6
	prWriteExclusiveAllRegistrants   prType = 7
	prExclusiveAccessAllRegistrants  prType = 8
)

// reservationType is what the driver holds: every registered node may
// write, and only registered nodes may, so unregistering a node fences it.
const reservationType = prWriteExclusiveRegistrantsOnly

var prTypeNames = map[prType]string{
	prWriteExclusive:                 "Write Exclusive",
	prExclusiveAccess:                "Exclusive Access",
	prWriteExclusiveRegistrantsOnly:  "Write Exclusive, registrants only",
	prExclusiveAccessRegistrantsOnly: "Exclusive Access, registrants only",
	prWriteExclusiveAllRegistrants:   "Write Exclusive, all registrants",
	prExclusiveAccessAllRegistrants:  "Exclusive Access, all registrants",
}

func (t prType) String() string {
	if n, ok := prTypeNames[t]; ok {
		return fmt.Sprintf("%s (type %d)", n, uint8(t))
	}
	return fmt.Sprintf("type %d", uint8(t))
}

func (t prType) valid() bool { _, ok := prTypeNames[t]; return ok }

// allRegistrants reports whether every registrant holds the reservation
// (types 7 and 8); READ RESERVATION then reports key 0.
func (t prType) allRegistrants() bool {
	return t == prWriteExclusiveAllRegistrants || t == prExclusiveAccessAllRegistrants
}

// prKeys is the answer to PERSISTENT RESERVE IN, READ KEYS.
type prKeys struct {
	Generation uint32
	Keys       []uint64 // one per registered I_T nexus, so possibly repeated
}

// prReservation is the answer to PERSISTENT RESERVE IN, READ RESERVATION.
type prReservation struct {
	Generation uint32
	Held       bool
	Key        uint64 // 0 for the all-registrants types
	Type       prType
}

// prDevice is one logical unit as seen through this node's I_T nexus. The
// PROUT calls return ErrReservationConflict or ErrIllegalRequest (wrapped)
// when the device refuses them.
type prDevice interface {
	ReadKeys(ctx context.Context) (prKeys, error)
	ReadReservation(ctx context.Context) (prReservation, error)
	// Register registers key for this nexus, replacing any key it had
	// (REGISTER AND IGNORE EXISTING KEY): it succeeds whether or not a
	// previous run left a registration behind.
	Register(ctx context.Context, key uint64) error
	Reserve(ctx context.Context, key uint64, t prType) error
	// Preempt is PREEMPT AND ABORT: it removes the registrations of
	// victim and, when victim holds the reservation, gives it to key
	// with type t.
	Preempt(ctx context.Context, key, victim uint64, t prType) error
	Release(ctx context.Context, key uint64, t prType) error
	// Unregister is REGISTER with the current key and a new key of 0.
	Unregister(ctx context.Context, key uint64) error
}

// KwSCSIReservKey names the reservation keys of the nodes.
const KwSCSIReservKey = "scsireserv_key"

// nodeKey derives a node's default reservation key from its host name.
func nodeKey(host string) uint64 {
	sum := sha256.Sum256([]byte("vigil:" + host))
	k := binary.BigEndian.Uint64(sum[:8])
	if k == 0 {
		// Zero means "no key" in every PROUT parameter list.
		k = 1
	}
	return k
}

// fmtKey prints a key the way sg_persist does, so that an operator can
// match it against `sg_persist --in --read-keys`.
func fmtKey(k uint64) string { return fmt.Sprintf("0x%x", k) }

// parseKey reads a key in hex, with or without 0x: 1 to 16 digits, not 0.
func parseKey(s string) (uint64, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if h == "" || len(h) > 16 {
		return 0, fmt.Errorf("%q is not a reservation key (1 to 16 hex digits, e.g. 0x1a2b3c4d)", s)
	}
	k, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a reservation key (1 to 16 hex digits, e.g. 0x1a2b3c4d)", s)
	}
	if k == 0 {
		return 0, fmt.Errorf("%q: a reservation key cannot be 0", s)
	}
	return k, nil
}

// parseKeyMap reads scsireserv_key: whitespace-separated NODE=KEY words.
// A bare key is refused because the service configuration is the same on
// every node, and two nodes sharing a key cannot fence each other.
func parseKeyMap(v string) (map[string]uint64, error) {
	keys := map[string]uint64{}
	owner := map[uint64]string{}
	for _, w := range strings.Fields(v) {
		node, ks, ok := strings.Cut(w, "=")
		if !ok || node == "" {
			return nil, fmt.Errorf("%q: give one key per node, e.g. %s = node1=0x1a2b node2=0x3c4d (the configuration is the same on every node, and nodes must not share a key)", w, KwSCSIReservKey)
		}
		k, err := parseKey(ks)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", node, err)
		}
		if _, dup := keys[node]; dup {
			return nil, fmt.Errorf("node %s is given two keys", node)
		}
		if other, dup := owner[k]; dup {
			return nil, fmt.Errorf("nodes %s and %s share the key %s: each node needs its own", other, node, fmtKey(k))
		}
		keys[node], owner[k] = k, node
	}
	return keys, nil
}

// reservationKey is this node's key for r: from scsireserv_key when it
// names this node, else derived from the host name.
func (d *Driver) reservationKey(r sdk.Resource) (uint64, error) {
	keys, err := parseKeyMap(r.Get(KwSCSIReservKey))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", KwSCSIReservKey, err)
	}
	if k, ok := keys[d.cfg.Hostname]; ok {
		return k, nil
	}
	return nodeKey(d.cfg.Hostname), nil
}

// reserver applies the reservation scheme to a set of devices.
type reserver struct {
	key  uint64
	open func(dev string) prDevice
	log  hclog.Logger
}

// maxReserveRounds bounds the read-then-act loop of acquire: another node
// acting between our read and our command makes the command conflict, and
// we read again.
const maxReserveRounds = 3

// acquire registers the key on every device, takes the reservation and
// removes every other registration. It stops at the first device that
// fails: the caller must not activate the group then.
func (rs reserver) acquire(ctx context.Context, devs []string) ([]string, error) {
	var out []string
	for _, dev := range devs {
		lines, err := rs.acquireOne(ctx, dev)
		out = append(out, lines...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (rs reserver) acquireOne(ctx context.Context, dev string) ([]string, error) {
	pd := rs.open(dev)
	key := fmtKey(rs.key)
	log := rs.log.With("dev", dev, "key", key)
	if err := pd.Register(ctx, rs.key); err != nil {
		return nil, fmt.Errorf("register key %s on %s: %w", key, dev, err)
	}
	var out []string
	for round := 1; ; round++ {
		res, err := pd.ReadReservation(ctx)
		if err != nil {
			return out, fmt.Errorf("read the reservation of %s: %w", dev, err)
		}
		if res.Held && res.Key == rs.key && res.Type == reservationType {
			break
		}
		if round > maxReserveRounds {
			return out, fmt.Errorf("reserve %s: the reservation keeps changing (now %s); another node is acting on it: check the cluster", dev, describeRes(res))
		}
		var msg string
		switch {
		case !res.Held:
			err = pd.Reserve(ctx, rs.key, reservationType)
			msg = fmt.Sprintf("reserved %s with key %s", dev, key)
		case res.Type.allRegistrants():
			// Key 0 preempts every other registrant of an
			// all-registrants reservation.
			err = pd.Preempt(ctx, rs.key, 0, reservationType)
			msg = fmt.Sprintf("preempted the all-registrants reservation of %s", dev)
		case res.Key == rs.key:
			// Ours with another type: preempting ourselves changes it.
			err = pd.Preempt(ctx, rs.key, rs.key, reservationType)
			msg = fmt.Sprintf("changed the reservation of %s from %s to %s", dev, res.Type, reservationType)
		default:
			err = pd.Preempt(ctx, rs.key, res.Key, reservationType)
			msg = fmt.Sprintf("preempted the reservation of %s held by key %s", dev, fmtKey(res.Key))
		}
		if errors.Is(err, ErrReservationConflict) {
			log.Warn("reservation changed under us, reading it again", "error", err)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("reserve %s (was %s): %w", dev, describeRes(res), err)
		}
		log.Info(msg)
		out = append(out, msg)
	}
	// Under a registrants-only reservation every registrant may write:
	// a registration left by a lost node is a write path to fence.
	keys, err := pd.ReadKeys(ctx)
	if err != nil {
		return out, fmt.Errorf("read the registrations of %s: %w", dev, err)
	}
	for _, k := range uniqueKeys(keys.Keys) {
		if k == rs.key {
			continue
		}
		err := pd.Preempt(ctx, rs.key, k, reservationType)
		if errors.Is(err, ErrReservationConflict) {
			// The key is no longer registered: someone removed it
			// since we read the keys.
			continue
		}
		if err != nil {
			return out, fmt.Errorf("remove the registration of key %s from %s: %w", fmtKey(k), dev, err)
		}
		msg := fmt.Sprintf("removed the registration of key %s from %s", fmtKey(k), dev)
		log.Info(msg)
		out = append(out, msg)
	}
	// A conflict above may also mean that we were preempted meanwhile.
	res, err := pd.ReadReservation(ctx)
	if err != nil {
		return out, fmt.Errorf("read the reservation of %s: %w", dev, err)
	}
	if !res.Held || res.Key != rs.key || res.Type != reservationType {
		return out, fmt.Errorf("reserve %s: lost the reservation while fencing the other keys (now %s); another node is acting on it: check the cluster", dev, describeRes(res))
	}
	return out, nil
}

// release gives up the reservation and the registration on every device.
// It goes on after a failure so that as little as possible is left held,
// and returns the failures joined.
func (rs reserver) release(ctx context.Context, devs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, dev := range devs {
		lines, err := rs.releaseOne(ctx, dev)
		out = append(out, lines...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

func (rs reserver) releaseOne(ctx context.Context, dev string) ([]string, error) {
	pd := rs.open(dev)
	key := fmtKey(rs.key)
	var out []string
	res, err := pd.ReadReservation(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the reservation of %s: %w", dev, err)
	}
	if res.Held && res.Key == rs.key {
		if err := pd.Release(ctx, rs.key, res.Type); err != nil {
			return nil, fmt.Errorf("release the reservation of %s: %w", dev, err)
		}
		out = append(out, fmt.Sprintf("released the reservation of %s", dev))
	}
	keys, err := pd.ReadKeys(ctx)
	if err != nil {
		return out, fmt.Errorf("read the registrations of %s: %w", dev, err)
	}
	if slices.Contains(keys.Keys, rs.key) {
		if err := pd.Unregister(ctx, rs.key); err != nil {
			return out, fmt.Errorf("unregister key %s from %s: %w", key, dev, err)
		}
		out = append(out, fmt.Sprintf("unregistered key %s from %s", key, dev))
	}
	rs.log.Info("released", "dev", dev, "key", key)
	return out, nil
}

// prState is what one device says about its reservation.
type prState struct {
	dev string
	res prReservation
	err error
}

func (rs reserver) states(ctx context.Context, devs []string) []prState {
	sts := make([]prState, 0, len(devs))
	for _, dev := range devs {
		res, err := rs.open(dev).ReadReservation(ctx)
		sts = append(sts, prState{dev: dev, res: res, err: err})
	}
	return sts
}

// assessReservation is the reservation's share of the status: up when
// this node holds it on every device, down when no device is reserved or
// another key holds it, warn when the devices disagree or the type is not
// ours, undef when a device cannot be read. Every device not held by us
// gets a reason line.
func assessReservation(key uint64, sts []prState) sdk.ResourceStatus {
	var st sdk.ResourceStatus
	var ours, free, other, odd, unread int
	for _, s := range sts {
		switch {
		case s.err != nil:
			unread++
			st.Log = append(st.Log, fmt.Sprintf("cannot read the reservation of %s: %v", s.dev, s.err))
		case !s.res.Held:
			free++
			st.Log = append(st.Log, fmt.Sprintf("no reservation on %s", s.dev))
		case s.res.Key == key && s.res.Type == reservationType:
			ours++
		case s.res.Key == key:
			odd++
			st.Log = append(st.Log, fmt.Sprintf("reservation on %s is %s, want %s", s.dev, s.res.Type, reservationType))
		default:
			other++
			st.Log = append(st.Log, fmt.Sprintf("reservation on %s held by key %s (this node's key is %s)", s.dev, fmtKey(s.res.Key), fmtKey(key)))
		}
	}
	switch {
	case unread > 0:
		st.Status = sdk.StatusUndef
	case ours == len(sts):
		st.Status = sdk.StatusUp
	case free+other == len(sts):
		st.Status = sdk.StatusDown
	default:
		st.Status = sdk.StatusWarn
	}
	return st
}

// combine merges two parts of one resource's status: agreement keeps the
// status, up with down is warn, and undef or warn wins.
func combine(a, b sdk.Status) sdk.Status {
	switch {
	case a == b:
		return a
	case a == sdk.StatusUndef || b == sdk.StatusUndef:
		return sdk.StatusUndef
	default:
		return sdk.StatusWarn
	}
}

func describeRes(res prReservation) string {
	switch {
	case !res.Held:
		return "not reserved"
	case res.Type.allRegistrants():
		return fmt.Sprintf("reserved %s", res.Type)
	default:
		return fmt.Sprintf("reserved by key %s, %s", fmtKey(res.Key), res.Type)
	}
}

func uniqueKeys(keys []uint64) []uint64 {
	u := slices.Clone(keys)
	slices.Sort(u)
	return slices.Compact(u)
}
