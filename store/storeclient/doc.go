// Package storeclient is how the rest of the cluster reaches the store: the
// wire format of the store's NATS request/reply protocol (wire.go: one
// request and one response type per op, error codes that carry the root
// package's sentinel errors across the wire) and the Client that gateways
// call. It imports nothing of the storage service, so a gateway reaches
// storage only through it and never links a database driver.
package storeclient
