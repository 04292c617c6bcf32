//go:build tools

// Package tools pins Volcano's scheduler command.
package tools

import _ "volcano.sh/volcano/cmd/scheduler"
