//go:build tools

// Package tools pins Kueue's controller-manager command.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
