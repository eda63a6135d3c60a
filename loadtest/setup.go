package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// SetupStats describes the HTTP set-up phase (sign-ups, conversations).
type SetupStats struct {
	Users         int              `json:"users"`
	Reused        int              `json:"reused"` // taken from --users-file, not signed up
	SignupOK      int64            `json:"signup_ok"`
	SignupFailed  int64            `json:"signup_failed"`
	SignupSeconds float64          `json:"signup_seconds"`
	SignupPerSec  float64          `json:"signup_per_sec"`
	Groups        int              `json:"groups"`
	GroupFailed   int64            `json:"group_failed"`
	GroupSeconds  float64          `json:"group_seconds"`
	Errors        map[string]int64 `json:"errors,omitempty"`
}

// randomPrefix returns a short lower-case prefix that makes this run's
// usernames unique on a server that already holds earlier runs' users.
func randomPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	_, _ = rand.Read(b[:])
	out := []byte("lt")
	for _, c := range b {
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

// parallel runs f(i) for i in [0, n) on at most conc goroutines.
func parallel(ctx context.Context, n, conc int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(conc, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// buildPlan signs the users up and creates the conversations of the scenario.
func buildPlan(ctx context.Context, o *Options, tg Target, api *API) (*Plan, SetupStats, error) {
	p := &Plan{
		Scenario: o.Scenario, HTTP: tg.HTTP, WS: tg.WS, Spread: !o.NoSpread,
		Senders: o.Senders, Rate: o.Rate, Duration: Dur(o.Duration), BodySize: o.BodySize,
		ConnectConcurrency: o.ConnectConcurrency, ConnectTimeout: Dur(o.ConnectTimeout),
		DrainTimeout: Dur(o.DrainTimeout), MaxInflight: o.MaxInflight,
		StormAt: Dur(o.StormAt), StormJitter: Dur(o.StormJitter),
	}
	var st SetupStats
	var emu sync.Mutex
	st.Errors = map[string]int64{}
	fail := func(what string, err error) {
		emu.Lock()
		st.Errors[what+": "+ErrorKey(err)]++
		emu.Unlock()
	}

	nconns, nusers := o.Conns, o.Conns
	if o.Scenario == "idle" && o.Users > 0 {
		nusers = min(o.Users, o.Conns)
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = randomPrefix()
	}
	p.Users = make([]PlanUser, nusers)
	ok := make([]bool, nusers)
	cached, err := loadUsers(o.UsersFile)
	if err != nil {
		return nil, st, err
	}
	for i := 0; i < nusers && i < len(cached); i++ {
		p.Users[i], ok[i] = cached[i], true
		st.Reused++
	}
	t0 := time.Now()
	var signupOK, signupFailed atomic.Int64
	stopProgress := o.progressEvery(10*time.Second, func() {
		o.logf("signed up %d of %d users", signupOK.Load(), nusers-st.Reused)
	})
	parallel(ctx, nusers-st.Reused, o.SignupConcurrency, func(j int) {
		i := st.Reused + j
		name := fmt.Sprintf("%s_%d", prefix, i)
		err := withRetry(ctx, 5, func() error {
			u, tok, err := api.Signup(ctx, name, o.Password)
			var ae *APIError
			if errors.As(err, &ae) && ae.Status == http.StatusConflict {
				// A repeated run with the same --prefix: the user exists.
				u, tok, err = api.Login(ctx, name, o.Password)
			}
			if err == nil {
				p.Users[i] = PlanUser{Name: name, ID: u.ID, Token: tok}
			}
			return err
		})
		if err != nil {
			signupFailed.Add(1)
			fail("signup", err)
			return
		}
		ok[i] = true
		signupOK.Add(1)
	})
	stopProgress()
	if o.UsersFile != "" && signupOK.Load() > 0 {
		all := append([]PlanUser(nil), cached...)
		for i := len(cached); i < nusers; i++ {
			if ok[i] {
				all = append(all, p.Users[i])
			}
		}
		if err := saveUsers(o.UsersFile, all); err != nil {
			fail("users_file", err)
		}
	}
	st.Users = nusers
	st.SignupOK, st.SignupFailed = signupOK.Load(), signupFailed.Load()
	st.SignupSeconds = round3(time.Since(t0).Seconds())
	if st.SignupSeconds > 0 {
		st.SignupPerSec = round3(float64(st.SignupOK) / st.SignupSeconds)
	}
	if err := ctx.Err(); err != nil {
		return nil, st, err
	}
	if st.SignupOK == 0 && st.Reused == 0 {
		return nil, st, fmt.Errorf("no user could sign up (%v)", st.Errors)
	}

	// Connections of users who could not sign up are left out of the plan.
	p.Conns = make([]PlanConn, 0, nconns)
	userOf := make([]int, 0, nconns)
	for i := 0; i < nconns; i++ {
		u := i % nusers
		if ok[u] {
			userOf = append(userOf, u)
		}
	}
	for _, u := range userOf {
		p.Conns = append(p.Conns, PlanConn{User: u, Group: -1, Sender: -1})
	}

	t1 := time.Now()
	switch o.Scenario {
	case "chat", "storm":
		g := o.Group
		ngroups := len(p.Conns) / g
		p.Groups = make([]PlanGroup, ngroups)
		for gi := range p.Groups {
			for m := 0; m < g; m++ {
				ci := gi*g + m
				p.Groups[gi].Members = append(p.Groups[gi].Members, ci)
				p.Conns[ci].Group = gi
			}
		}
		// Leftover connections (fewer than a group) stay idle.
		var failed atomic.Int64
		parallel(ctx, ngroups, o.SignupConcurrency, func(gi int) {
			grp := &p.Groups[gi]
			owner := p.Users[p.Conns[grp.Members[0]].User]
			names := make([]string, 0, g-1)
			for _, ci := range grp.Members[1:] {
				names = append(names, p.Users[p.Conns[ci].User].Name)
			}
			err := withRetry(ctx, 5, func() error {
				id, err := api.CreateGroup(ctx, owner.Token, fmt.Sprintf("load %s %d", prefix, gi), names)
				grp.ID = id
				return err
			})
			if err != nil {
				failed.Add(1)
				fail("create_group", err)
			}
		})
		st.GroupFailed = failed.Load()
		// Members of a group that could not be created neither send nor count.
		var okGroups []int
		for gi := range p.Groups {
			if p.Groups[gi].ID != "" {
				okGroups = append(okGroups, gi)
				continue
			}
			for _, ci := range p.Groups[gi].Members {
				p.Conns[ci].Group = -1
			}
		}
		// Senders spread over groups first, then over members.
		p.Senders = 0
		if n := len(okGroups); n > 0 {
			s := min(o.Senders, n*g)
			for k := 0; k < s; k++ {
				ci := p.Groups[okGroups[k%n]].Members[(k/n)%g]
				p.Conns[ci].Sender = k
			}
			p.Senders = s
		}
	case "broadcast":
		grp := PlanGroup{}
		for ci := range p.Conns {
			grp.Members = append(grp.Members, ci)
			p.Conns[ci].Group = 0
		}
		owner := p.Users[p.Conns[0].User]
		var names []string
		for _, ci := range grp.Members[1:] {
			names = append(names, p.Users[p.Conns[ci].User].Name)
		}
		first := names[:min(len(names), o.CreateBatch)]
		err := withRetry(ctx, 5, func() error {
			id, err := api.CreateGroup(ctx, owner.Token, "load broadcast "+prefix, first)
			grp.ID = id
			return err
		})
		if err != nil {
			fail("create_group", err)
			return nil, st, fmt.Errorf("create the broadcast group: %w", err)
		}
		// The rest join one by one (the create call's member list is capped).
		rest := names[len(first):]
		var failed atomic.Int64
		parallel(ctx, len(rest), o.SignupConcurrency, func(i int) {
			err := withRetry(ctx, 5, func() error { return api.AddMember(ctx, owner.Token, grp.ID, rest[i]) })
			if err != nil {
				failed.Add(1)
				fail("add_member", err)
			}
		})
		st.GroupFailed = failed.Load()
		p.Groups = []PlanGroup{grp}
		s := min(o.Senders, len(p.Conns))
		for k := 0; k < s; k++ {
			p.Conns[k*len(p.Conns)/s].Sender = k
		}
		p.Senders = s
	}
	st.Groups = len(p.Groups)
	st.GroupSeconds = round3(time.Since(t1).Seconds())
	if len(st.Errors) == 0 {
		st.Errors = nil
	}
	return p, st, ctx.Err()
}

// loadUsers reads a --users-file; a missing file is an empty list.
func loadUsers(path string) ([]PlanUser, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Users []PlanUser `json:"users"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return f.Users, nil
}

// saveUsers writes the users (with their tokens) for later runs.
func saveUsers(path string, users []PlanUser) error {
	b, err := json.Marshal(map[string]any{"users": users})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
