package netns

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// spawner starts child processes inside namespaces from one thread that
// lives as long as the process. The kernel's parent-death signal follows the
// thread that forked, not the process: a child started from Do's throwaway
// thread would be killed the moment that thread exits, and one started
// without it would outlive a killed parent. Forking from this thread, with
// SIGKILL as the parent-death signal, ties every child to the process.
type spawner struct {
	once sync.Once
	reqs chan spawnReq
	err  error
}

type spawnReq struct {
	nsfd int
	cmd  *exec.Cmd
	done chan error
}

var theSpawner spawner

func (s *spawner) start() error {
	s.once.Do(func() {
		s.reqs = make(chan spawnReq)
		ready := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread is the children's parent
			home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			ready <- err
			if err != nil {
				return
			}
			for r := range s.reqs {
				r.done <- s.spawn(home, r)
			}
		}()
		s.err = <-ready
	})
	return s.err
}

func (s *spawner) spawn(home int, r spawnReq) error {
	if err := unix.Setns(r.nsfd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	err := r.cmd.Start()
	if serr := unix.Setns(home, unix.CLONE_NEWNET); serr != nil {
		// The thread is stuck in the wrong namespace: better to stop than to
		// start later children in it.
		panic(fmt.Sprintf("netns: cannot return the spawner thread to its namespace: %v", serr))
	}
	return err
}

// Spawn starts cmd inside the namespace as a child that the kernel kills
// (SIGKILL) when this process dies, however it dies. The caller still waits
// for it (cmd.Wait) and may end it sooner.
func (ns *Namespace) Spawn(cmd *exec.Cmd) error {
	if err := theSpawner.start(); err != nil {
		return fmt.Errorf("netns: spawner: %w", err)
	}
	ns.mu.Lock()
	fd := ns.fd
	ns.mu.Unlock()
	if fd < 0 {
		return fmt.Errorf("netns: namespace closed")
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	theSpawner.reqs <- spawnReq{nsfd: fd, cmd: cmd, done: done}
	return <-done
}
