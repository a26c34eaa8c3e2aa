package updater

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVersionStep(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"1.2.3", "2.0.0", PolicyMajor},
		{"1.2.3", "1.3.0", PolicyMinor},
		{"1.2.3", "1.2.4", PolicyPatch},
		{"v1.2", "v1.3", PolicyMinor},
		{"16", "17", PolicyMajor},
		{"1.2.3.4", "1.2.3.5", PolicyPatch},
		{"1.2.3-rc1", "1.2.3", PolicyPatch},
	} {
		a, err1 := parseVersion(tc.from)
		b, err2 := parseVersion(tc.to)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got := versionStep(a, b); got != tc.want {
			t.Errorf("versionStep(%s, %s) = %s, want %s", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestParseApproveKinds(t *testing.T) {
	if k, err := ParseApproveKinds(" Major, minor,major,,"); err != nil || !slices.Equal(k, []string{"major", "minor"}) {
		t.Errorf("ParseApproveKinds = %v, %v", k, err)
	}
	if k, err := ParseApproveKinds(""); err != nil || k != nil {
		t.Errorf(`ParseApproveKinds("") = %v, %v; want none`, k, err)
	}
	if _, err := ParseApproveKinds("minor,huge"); err == nil || !strings.Contains(err.Error(), `"huge"`) {
		t.Errorf("ParseApproveKinds(minor,huge) = %v", err)
	}
	s, err := ParseSettings(map[string]string{LabelApprove: ""}, Defaults{Approve: []string{"digest"}})
	if err != nil || len(s.Approve) != 0 {
		t.Errorf("an empty watcher.approve = %v, %v; want it to replace update.approve with none", s.Approve, err)
	}
	if s, _ := ParseSettings(nil, Defaults{Approve: []string{"digest"}}); !slices.Equal(s.Approve, []string{"digest"}) {
		t.Errorf("without the label: %v, want update.approve", s.Approve)
	}
}

// TestApprovalHolds: the plan's decision for each state of an entry, and what lifts it: only
// an approval of the exact digest, or a manual rollback; ?force=true does not.
func TestApprovalHolds(t *testing.T) {
	c := &Container{Name: "web", Watched: true, Settings: Settings{Mode: ModeUpdate, Approve: []string{PolicyDigest}}}
	cand := Candidate{Container: c, NewDigest: "sha256:" + strings.Repeat("2", 64), Kind: PolicyDigest, Cause: "digest a -> b"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(state, digest string) map[string]*Approval {
		return map[string]*Approval{"web": {State: state, Digest: digest, DecidedAt: at}}
	}
	other := "sha256:" + strings.Repeat("1", 64)
	for _, tc := range []struct {
		name     string
		o        planOptions
		outcome  Outcome // "" = not held
		whyHolds string
	}{
		{"nothing recorded", planOptions{Approvals: map[string]*Approval{}}, OutcomePendingApproval, "a digest update waits for approval (digest a -> b); approve: POST /v1/approve?container=web"},
		{"pending", planOptions{Approvals: entry(ApprovalPending, cand.NewDigest)}, OutcomePendingApproval, "waits for approval"},
		{"approved", planOptions{Approvals: entry(ApprovalApproved, cand.NewDigest)}, "", ""},
		{"approved another digest", planOptions{Approvals: entry(ApprovalApproved, other)}, OutcomePendingApproval, "the approval of sha256:111111111111 lapsed: the registry moved on to sha256:222222222222"},
		{"rejected", planOptions{Approvals: entry(ApprovalRejected, cand.NewDigest)}, OutcomeSkipped, "rejected at 2026-01-02T03:04:05Z"},
		{"rejected, forced", planOptions{Approvals: entry(ApprovalRejected, cand.NewDigest), Forced: map[string]bool{"web": true}}, OutcomeSkipped, "rejected"},
		{"rejected another digest", planOptions{Approvals: entry(ApprovalRejected, other)}, OutcomePendingApproval, "the rejection of sha256:111111111111 lapsed"},
		{"a manual rollback", planOptions{Approvals: map[string]*Approval{}, Rollback: true}, "", ""},
		{"no state file", planOptions{}, OutcomeSkipped, "no state file keeps approvals"},
	} {
		h, op := holdOf(cand, tc.o)
		switch {
		case tc.outcome == "" && (h != nil || op != OpUpdate):
			t.Errorf("%s: held %+v, want an update", tc.name, h)
		case tc.outcome != "" && (h == nil || h.Outcome != tc.outcome || !strings.Contains(h.Why, tc.whyHolds)):
			t.Errorf("%s: %+v, want %s saying %q", tc.name, h, tc.outcome, tc.whyHolds)
		}
	}
	h, _ := holdOf(cand, planOptions{Approvals: map[string]*Approval{}})
	if got := (&Plan{Held: []Hold{*h}}).String(); !strings.HasPrefix(got, "wait web: a digest update waits for approval") {
		t.Errorf("the plan prints %q", got)
	}
	if h, op := holdOf(Candidate{Container: c, NewDigest: cand.NewDigest, Kind: PolicyMajor}, planOptions{Approvals: map[string]*Approval{}}); h != nil || op != OpUpdate {
		t.Errorf("a kind not listed is held: %+v", h)
	}
}
