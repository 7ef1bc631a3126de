package lvm

// A model of a logical unit that supports SCSI-3 persistent reservations.
//
// This host has no SCSI target (no targetcli/LIO, no device-mapper, no
// scsi_debug with PR): loop devices refuse SG_IO, so sg_persist cannot be
// exercised end to end here. The driver's reservation logic is therefore
// tested against this model, behind the same prDevice interface as
// sgPersist; sgPersist itself is tested on captured output and on the
// CDBs the real binary builds (sgpersist_test.go).
//
// What the model follows, from SPC-4 5.13 (Reservations) and 6.16/6.17
// (PERSISTENT RESERVE IN/OUT):
//   - registrations are per I_T nexus (a nexus is a node here), and several
//     nexuses may register the same key;
//   - PRgeneration is incremented by every successful REGISTER, REGISTER
//     AND IGNORE EXISTING KEY, PREEMPT (AND ABORT) and CLEAR, and not by
//     RESERVE, RELEASE, a no-op registration or a refused command;
//   - REGISTER from an unregistered nexus needs a reservation key of 0,
//     from a registered one its current key, else RESERVATION CONFLICT; a
//     new key of 0 unregisters (or is a no-op when not registered);
//   - every other PROUT command from a nexus that is not registered, or
//     with a key that is not its own, is a RESERVATION CONFLICT;
//   - RESERVE: creates the reservation; again by the holder with the same
//     type is a no-op; by anyone else, or with another type, a conflict;
//   - RELEASE: no reservation, or a registered non-holder: no-op (GOOD);
//     the holder with another type: ILLEGAL REQUEST; the holder: released;
//   - unregistering the holder releases the reservation (except for the
//     all-registrants types, released when the last registrant goes);
//   - PREEMPT (AND ABORT) of the holder's key removes every registration
//     with that key except the preempting nexus's own, and gives the
//     reservation to the preempting nexus with the new type; of another
//     key it only removes those registrations; of a key nobody holds it
//     is a RESERVATION CONFLICT; key 0 is ILLEGAL REQUEST except on an
//     all-registrants reservation, where it removes every other
//     registrant and takes the reservation;
//   - data access: Write Exclusive (1) lets only the holder write,
//     Exclusive Access (3) lets only the holder read or write, the
//     registrants-only and all-registrants types let registered nexuses
//     write (5, 7) or read and write (6, 8); refusals are RESERVATION
//     CONFLICT, as a disk answers.
//
// Not modelled: unit attentions (RESERVATIONS PREEMPTED/RELEASED) to other
// nexuses, the command queue that PREEMPT AND ABORT aborts (the model has
// none in flight), APTPL and power loss, ALL_TG_PT and multiple target
// ports, REGISTER AND MOVE, REPORT CAPABILITIES and READ FULL STATUS.

import (
	"context"
	"fmt"
	"sync"
)

// prModel is one modelled logical unit shared by the nexuses of a test.
type prModel struct {
	mu         sync.Mutex
	generation uint32
	regs       map[string]uint64 // nexus -> key
	reserved   bool
	holder     string // nexus; "" for the all-registrants types
	resType    prType
	writes     map[string]int // accepted writes, by nexus
}

func newPRModel() *prModel {
	return &prModel{regs: map[string]uint64{}, writes: map[string]int{}}
}

// nexus returns the device as seen by the named initiator.
func (m *prModel) nexus(name string) prDevice { return &prNexus{m: m, name: name} }

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrReservationConflict, fmt.Sprintf(format, a...))
}

func illegal(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrIllegalRequest, fmt.Sprintf(format, a...))
}

// isHolder reports whether n holds the reservation.
func (m *prModel) isHolder(n string) bool {
	if !m.reserved {
		return false
	}
	if m.resType.allRegistrants() {
		_, ok := m.regs[n]
		return ok
	}
	return m.holder == n
}

// checkKey refuses a PROUT command from an unregistered nexus or with a
// key that is not the nexus's.
func (m *prModel) checkKey(n string, rk uint64) error {
	cur, ok := m.regs[n]
	if !ok {
		return conflict("%s is not registered", n)
	}
	if cur != rk {
		return conflict("%s is registered with %s, not %s", n, fmtKey(cur), fmtKey(rk))
	}
	return nil
}

func (m *prModel) unregister(n string) {
	delete(m.regs, n)
	switch {
	case !m.reserved:
	case m.resType.allRegistrants():
		if len(m.regs) == 0 {
			m.reserved = false
		}
	case m.holder == n:
		m.reserved, m.holder = false, ""
	}
}

// register is REGISTER (ignore = false) and REGISTER AND IGNORE EXISTING
// KEY (ignore = true).
func (m *prModel) register(n string, rk, sark uint64, ignore bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.regs[n]
	switch {
	case !ok && !ignore && rk != 0:
		return conflict("%s is not registered, the reservation key must be 0", n)
	case ok && !ignore && rk != cur:
		return conflict("%s is registered with %s, not %s", n, fmtKey(cur), fmtKey(rk))
	case !ok && sark == 0:
		return nil // nothing to do, and no new generation
	case sark == 0:
		m.unregister(n)
	default:
		m.regs[n] = sark
	}
	m.generation++
	return nil
}

func (m *prModel) reserve(n string, rk uint64, t prType) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkKey(n, rk); err != nil {
		return err
	}
	if !t.valid() {
		return illegal("invalid type %d", t)
	}
	switch {
	case !m.reserved:
		m.reserved, m.resType, m.holder = true, t, n
		if t.allRegistrants() {
			m.holder = ""
		}
		return nil
	case m.isHolder(n) && m.resType == t:
		return nil
	default:
		return conflict("reserved by another nexus or with another type")
	}
}

func (m *prModel) release(n string, rk uint64, t prType) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkKey(n, rk); err != nil {
		return err
	}
	switch {
	case !m.reserved || !m.isHolder(n):
		return nil
	case m.resType != t:
		return illegal("invalid release of persistent reservation: type %d, held as %d", t, m.resType)
	}
	m.reserved, m.holder = false, ""
	return nil
}

// preempt is PREEMPT AND ABORT (PREEMPT differs only in the aborted
// tasks, which the model does not have).
func (m *prModel) preempt(n string, rk, sark uint64, t prType) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkKey(n, rk); err != nil {
		return err
	}
	if !t.valid() {
		return illegal("invalid type %d", t)
	}
	removeKey := func() int {
		removed := 0
		for other, k := range m.regs {
			if other != n && k == sark {
				m.unregister(other)
				removed++
			}
		}
		return removed
	}
	switch {
	case m.reserved && m.resType.allRegistrants() && sark == 0:
		for other := range m.regs {
			if other != n {
				delete(m.regs, other)
			}
		}
		m.resType, m.holder = t, n
		if t.allRegistrants() {
			m.holder = ""
		}
	case sark == 0:
		return illegal("service action reservation key 0 with no all-registrants reservation")
	case m.reserved && !m.resType.allRegistrants() && m.regs[m.holder] == sark:
		removeKey()
		m.reserved, m.holder, m.resType = true, n, t
	default:
		if removeKey() == 0 {
			return conflict("no registration with key %s", fmtKey(sark))
		}
	}
	m.generation++
	return nil
}

func (m *prModel) clear(n string, rk uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkKey(n, rk); err != nil {
		return err
	}
	m.regs = map[string]uint64{}
	m.reserved, m.holder = false, ""
	m.generation++
	return nil
}

// access checks a data command from nexus n against the reservation.
func (m *prModel) access(n string, write bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.reserved {
		return nil
	}
	_, registered := m.regs[n]
	var ok bool
	switch m.resType {
	case prWriteExclusive:
		ok = !write || m.holder == n
	case prExclusiveAccess:
		ok = m.holder == n
	case prWriteExclusiveRegistrantsOnly, prWriteExclusiveAllRegistrants:
		ok = !write || registered
	case prExclusiveAccessRegistrantsOnly, prExclusiveAccessAllRegistrants:
		ok = registered
	}
	if !ok {
		return conflict("%s may not access the logical unit under %s", n, m.resType)
	}
	if write {
		m.writes[n]++
	}
	return nil
}

// Write is a WRITE from nexus n.
func (m *prModel) Write(n string) error { return m.access(n, true) }

// Read is a READ from nexus n.
func (m *prModel) Read(n string) error { return m.access(n, false) }

// prNexus is the model seen through one nexus: the prDevice the driver
// gets.
type prNexus struct {
	m    *prModel
	name string
}

var _ prDevice = (*prNexus)(nil)

func (p *prNexus) ReadKeys(context.Context) (prKeys, error) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	keys := prKeys{Generation: p.m.generation}
	for _, k := range p.m.regs {
		keys.Keys = append(keys.Keys, k)
	}
	return keys, nil
}

func (p *prNexus) ReadReservation(context.Context) (prReservation, error) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	res := prReservation{Generation: p.m.generation, Held: p.m.reserved}
	if p.m.reserved {
		res.Type = p.m.resType
		if !p.m.resType.allRegistrants() {
			res.Key = p.m.regs[p.m.holder]
		}
	}
	return res, nil
}

func (p *prNexus) Register(_ context.Context, key uint64) error {
	return p.m.register(p.name, 0, key, true)
}

func (p *prNexus) Reserve(_ context.Context, key uint64, t prType) error {
	return p.m.reserve(p.name, key, t)
}

func (p *prNexus) Preempt(_ context.Context, key, victim uint64, t prType) error {
	return p.m.preempt(p.name, key, victim, t)
}

func (p *prNexus) Release(_ context.Context, key uint64, t prType) error {
	return p.m.release(p.name, key, t)
}

func (p *prNexus) Unregister(_ context.Context, key uint64) error {
	return p.m.register(p.name, key, 0, false)
}

// prFarm is a set of modelled devices by path, shared by the nodes of a
// test.
type prFarm map[string]*prModel

func newPRFarm(devs ...string) prFarm {
	f := prFarm{}
	for _, d := range devs {
		f[d] = newPRModel()
	}
	return f
}

// opener returns the openPR of the node whose nexus is named node.
func (f prFarm) opener(node string) func(dev string) prDevice {
	return func(dev string) prDevice {
		m, ok := f[dev]
		if !ok {
			return unsupported{dev}
		}
		return m.nexus(node)
	}
}

// unsupported is a device without persistent reservations.
type unsupported struct{ dev string }

func (u unsupported) err() error { return fmt.Errorf("%s: %w", u.dev, ErrPRNotSupported) }
func (u unsupported) ReadKeys(context.Context) (prKeys, error) {
	return prKeys{}, u.err()
}
func (u unsupported) ReadReservation(context.Context) (prReservation, error) {
	return prReservation{}, u.err()
}
func (u unsupported) Register(context.Context, uint64) error                { return u.err() }
func (u unsupported) Reserve(context.Context, uint64, prType) error         { return u.err() }
func (u unsupported) Preempt(context.Context, uint64, uint64, prType) error { return u.err() }
func (u unsupported) Release(context.Context, uint64, prType) error         { return u.err() }
func (u unsupported) Unregister(context.Context, uint64) error              { return u.err() }
