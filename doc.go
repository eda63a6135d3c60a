// Package chat is the vocabulary every part of the chat cluster shares: IDs
// and their generator, the user, conversation and message types, the
// protocol's limits, the sentinel errors, and the names of the NATS stream,
// subjects and headers. It sits at the bottom: it imports no other package of
// this module, so the gateway, the router and the store can all import it
// without importing each other.
package chat
