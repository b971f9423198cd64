package compat

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the broker if the test binary dies
// (panic, go test -timeout), so no broker outlives its test run.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
