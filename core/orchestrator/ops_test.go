package orchestrator

import "testing"

func TestEligible_SaysWhyANodeCannotTakeAService(t *testing.T) {
	s := Service{Name: "web", Nodes: []string{"n1", "n2"}, Instances: map[string]Instance{"n2": {State: Failed}}}
	for _, tc := range []struct {
		name string
		node Node
		inst InstanceState
		ok   bool
		why  string
	}{
		{"ready", Node{State: NodeReady}, Idle, true, ""},
		{"lost", Node{State: NodeLost}, Idle, false, "is lost"},
		{"frozen", Node{State: NodeReady, Frozen: true}, Idle, false, "is frozen"},
		{"failed there", Node{State: NodeReady}, Failed, false, "has it failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Instances["n2"] = Instance{State: tc.inst}
			v := View{Local: "n1", Nodes: map[string]Node{"n1": {Name: "n1", State: NodeReady}, "n2": tc.node}}
			ok, why := Eligible(v, s, "n2")
			if ok != tc.ok || why != tc.why {
				t.Errorf("Eligible = %v %q, want %v %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}
