package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeTerminal makes this process the terminal's foreground process group
// when it runs in the foreground of a terminal, and returns the function
// that hands the terminal back. A terminal sends Ctrl-C's SIGINT to its
// whole foreground group: under `make dev` that is make and go run as well,
// and make, however cleanly its child exits, then reports "Interrupt" and
// exits non-zero. With the terminal to itself, this process alone gets the
// signal, shuts down in order and exits 0, and make and go run exit 0 after
// it. Outside a terminal it does nothing.
func takeTerminal() (restore func()) {
	noop := func() {}
	fd := int(os.Stdin.Fd())
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() || unix.Getpgrp() == unix.Getpid() {
		return noop // no terminal, in the background, or already leading a group
	}
	if err := unix.Setpgid(0, 0); err != nil {
		return noop
	}
	// A background group that sets the foreground group gets SIGTTOU, which
	// would stop it: this process is such a group for a moment, and again
	// when it hands the terminal back.
	signal.Ignore(syscall.SIGTTOU)
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpid()); err != nil {
		_ = unix.Setpgid(0, fg)
		return noop
	}
	// Ctrl-Z would now stop this process alone, while the shell waits on
	// make, which is still running: the terminal would hang. Ignore it.
	signal.Ignore(syscall.SIGTSTP)
	return func() { _ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, fg) }
}
