package main

import (
	"flag"
	"io"
	"testing"

	"github.com/chatcluster/chat/store"
)

// The group limit flags and their CHAT_* twins: defaults, either way of
// setting them, the flag over the environment, bad values refused.
func TestGroupLimitFlags(t *testing.T) {
	def := groupLimits{store.DefaultGroupsPerHour, store.DefaultMembersPerHour, store.DefaultMaxGroupsPerUser}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want groupLimits
		bad  bool
	}{
		{name: "default", want: def},
		{name: "flags", args: []string{"--groups-per-hour", "5", "--members-per-hour=7", "--max-groups-per-user", "9"}, want: groupLimits{5, 7, 9}},
		{name: "env", env: map[string]string{"CHAT_GROUPS_PER_HOUR": "3", "CHAT_MEMBERS_PER_HOUR": "4", "CHAT_MAX_GROUPS_PER_USER": "6"}, want: groupLimits{3, 4, 6}},
		{name: "flag beats env", env: map[string]string{"CHAT_GROUPS_PER_HOUR": "3"}, args: []string{"--groups-per-hour=8"}, want: groupLimits{8, def.MembersPerHour, def.MaxGroupsPerUser}},
		{name: "zero", args: []string{"--groups-per-hour", "0"}, bad: true},
		{name: "negative env", env: map[string]string{"CHAT_MAX_GROUPS_PER_USER": "-1"}, bad: true},
		{name: "not a number", args: []string{"--members-per-hour", "lots"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var l groupLimits
			groupLimitFlags(fs, &l)
			err := parseFlags(fs, tc.args)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %+v", l)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l != tc.want {
				t.Fatalf("%+v, want %+v", l, tc.want)
			}
			var c store.ServiceConfig
			l.apply(&c)
			if c.GroupsPerHour != l.GroupsPerHour || c.MembersPerHour != l.MembersPerHour || c.MaxGroupsPerUser != l.MaxGroupsPerUser {
				t.Fatalf("apply: %+v", c)
			}
		})
	}
}
