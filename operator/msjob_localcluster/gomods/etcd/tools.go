//go:build tools

// Package tools pins etcd (its server module's root package is the etcd command).
package tools

import _ "go.etcd.io/etcd/server/v3"
