package esp

import "testing"

func TestSoftwareSelfTestPasses(t *testing.T) {
	if err := softwareSelfTest(); err != nil {
		t.Fatal(err)
	}
}
