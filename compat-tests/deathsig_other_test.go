//go:build !linux

package compat

import "os/exec"

// setDeathSignal has no portable equivalent off Linux; cleanup still stops
// brokers on a normal test exit.
func setDeathSignal(*exec.Cmd) {}
