package mls

import "testing"

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func TestTreeMathVectors(t *testing.T) {
	var vs []treeMathVector
	loadVectors(t, "tree-math.json", &vs)
	tally := newTally(t, "tree-math")
	for _, v := range vs {
		t.Run("", func(t *testing.T) {
			defer tally.record(t)
			if got := nodeWidth(v.NLeaves); got != v.NNodes {
				t.Fatalf("n_nodes(%d) = %d, want %d", v.NLeaves, got, v.NNodes)
			}
			if got := root(v.NLeaves); uint32(got) != v.Root {
				t.Fatalf("root(%d) = %d, want %d", v.NLeaves, got, v.Root)
			}
			r := root(v.NLeaves)
			for i := uint32(0); i < v.NNodes; i++ {
				x := nodeIndex(i)
				check := func(name string, want *uint32, ok bool, got func() nodeIndex) {
					t.Helper()
					if want == nil {
						if ok {
							t.Errorf("%s(%d) exists, want none", name, i)
						}
						return
					}
					if !ok {
						t.Errorf("%s(%d) missing, want %d", name, i, *want)
					} else if g := got(); uint32(g) != *want {
						t.Errorf("%s(%d) = %d, want %d", name, i, g, *want)
					}
				}
				check("left", v.Left[i], !x.isLeaf(), x.left)
				check("right", v.Right[i], !x.isLeaf(), x.right)
				check("parent", v.Parent[i], x != r, x.parent)
				check("sibling", v.Sibling[i], x != r, x.sibling)
			}
		})
	}
}
