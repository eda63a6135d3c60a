package main

import (
	"flag"

	"github.com/chatcluster/chat/store"
)

// groupLimits are the store's per-user group limits (issue 14), flags of
// chat store and chat dev: the store enforces them, for the whole cluster.
type groupLimits struct {
	GroupsPerHour, MembersPerHour, MaxGroupsPerUser int
}

// groupLimitFlags registers --groups-per-hour, --members-per-hour and
// --max-groups-per-user (CHAT_GROUPS_PER_HOUR, ...) with their defaults.
func groupLimitFlags(fs *flag.FlagSet, l *groupLimits) {
	l.GroupsPerHour, l.MembersPerHour, l.MaxGroupsPerUser =
		store.DefaultGroupsPerHour, store.DefaultMembersPerHour, store.DefaultMaxGroupsPerUser
	fs.Var(positiveInt{&l.GroupsPerHour}, "groups-per-hour", "groups one user may create in a clock hour")
	fs.Var(positiveInt{&l.MembersPerHour}, "members-per-hour", "members one user may add to groups in a clock hour, a new group's included")
	fs.Var(positiveInt{&l.MaxGroupsPerUser}, "max-groups-per-user", "groups one user may be a member of; adding a user at it fails for the one who adds")
}

// apply copies the limits into a store configuration.
func (l groupLimits) apply(c *store.ServiceConfig) {
	c.GroupsPerHour, c.MembersPerHour, c.MaxGroupsPerUser = l.GroupsPerHour, l.MembersPerHour, l.MaxGroupsPerUser
}
