//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// counter is a statistic with one writer and any number of readers: a
// plain load and store, no locked read-modify-write on the per-packet
// path (the loop package counts the same way, so engines pay alike).
type counter struct{ v atomic.Uint64 }

func (c *counter) add(n uint64) { c.v.Store(c.v.Load() + n) }
func (c *counter) load() uint64 { return c.v.Load() }
func (c *counter) inc()         { c.add(1) }

// pinPlan says which CPU the traffic helpers (generator, sink, client,
// iperf3) and the engine run on. -1 means not pinned.
type pinPlan struct {
	helper, engine int
}

func (p pinPlan) String() string {
	if p.helper < 0 {
		return "nothing pinned (fewer than two CPUs available)"
	}
	return fmt.Sprintf("the generator, sink and client threads and iperf3 on CPU %d; every other thread of tunbench (the engines, the Go runtime) on CPU %d", p.helper, p.engine)
}

// planPins picks the first two CPUs this process may run on: one for the
// traffic helpers, one for the engine, so that they do not take turns on
// one core.
func planPins() pinPlan {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return pinPlan{-1, -1}
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < 2; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return pinPlan{-1, -1}
	}
	return pinPlan{cpus[0], cpus[1]}
}

// benchNice is the scheduling priority tunbench's threads run at: above
// the default, so that other work on a shared machine (its threads at
// nice 0 get about a tenth of a CPU that one of ours wants) disturbs the
// measurement less. The contended flag still says when it did.
const benchNice = -10

// prioritize sets every thread of the process to benchNice (threads made
// later inherit it from the thread that makes them) and returns a
// function that puts back the priority they had.
func prioritize() (restore func()) {
	old, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return func() {}
	}
	// The raw getpriority returns 20-nice, so that it is never negative.
	old = 20 - old
	set := func(nice int) {
		for range 2 { // twice: see confine
			tasks, _ := os.ReadDir("/proc/self/task")
			for _, t := range tasks {
				if tid, err := strconv.Atoi(t.Name()); err == nil {
					unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
				}
			}
		}
	}
	set(benchNice)
	return func() { set(old) }
}

// confine pins every thread of the process to cpu and returns a function
// that gives them back the CPUs they had. Threads inherit the affinity of
// the thread that clones them, so everything the Go runtime starts later
// stays there too; only the helper threads move away, explicitly. That is
// how the engines that are goroutines (netpoll, wireguard-go) get the
// engine's CPU to themselves, like the pinned ones, instead of competing
// with the generator for its core.
func confine(cpu int) (restore func(), err error) {
	// Make sure the runtime's template thread exists (LockOSThread starts
	// it), so that it is confined too: it clones the threads asked for
	// by locked goroutines.
	runtime.LockOSThread()
	runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	set.Set(cpu)
	apply := func(s *unix.CPUSet) error {
		// Twice: a thread cloned during the first pass by one not yet
		// moved would have the old mask.
		for range 2 {
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return err
			}
			for _, t := range tasks {
				tid, err := strconv.Atoi(t.Name())
				if err != nil {
					continue
				}
				// A thread that exited meanwhile gives ESRCH: fine.
				if err := unix.SchedSetaffinity(tid, s); err != nil && err != unix.ESRCH {
					return fmt.Errorf("sched_setaffinity thread %d: %w", tid, err)
				}
			}
		}
		return nil
	}
	if err := apply(&set); err != nil {
		apply(&old)
		return nil, err
	}
	return func() { apply(&old) }, nil
}

// lockThread locks the calling goroutine to its OS thread and pins the
// thread to cpu (unless cpu < 0), returning the thread id. The caller must
// never unlock: when the goroutine exits the runtime then ends the thread,
// and its affinity dies with it instead of leaking into a reused thread.
// (Threads the runtime starts while a goroutine is locked are cloned by the
// runtime's template thread, so they do not inherit the pin either.)
func lockThread(cpu int) (int, error) {
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return 0, fmt.Errorf("sched_setaffinity cpu %d: %w", cpu, err)
		}
	}
	return unix.Gettid(), nil
}

// threadCPU is the CPU time thread tid of this process has used, from its
// per-thread CPU clock (nanosecond resolution, unlike /proc's ticks).
func threadCPU(tid int) (time.Duration, error) {
	// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) from the kernel's
	// posix-timers.h: the thread id, inverted, above three bits that say
	// "per thread" (4) and "scheduler time" (2).
	clock := int32(^uint32(tid)<<3 | 6)
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, fmt.Errorf("thread %d cpu clock: %w", tid, err)
	}
	return time.Duration(ts.Nano()), nil
}

// processCPU is the CPU time (user and system) of the whole process, every
// thread, dead ones included, from getrusage.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ioCalls reads syscr+syscw from a /proc io file: the read- and
// write-family system calls (read, readv, write, writev, ...) a thread or
// process has made, EAGAIN ones included. It does not count epoll, futex
// or socket calls such as sendmmsg and recvmmsg.
func ioCalls(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var total uint64
	found := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(": "))
		if !ok || (string(k) != "syscr" && string(k) != "syscw") {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		total += n
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("%s: no syscr/syscw", path)
	}
	return total, nil
}

// helperThread is a locked thread of this process that does traffic work
// (generator, sink, client) and is not part of the engine: its CPU time
// and system calls are subtracted from the process's.
type helperThread struct {
	tid atomic.Int64
}

// heapAllocs is the number of heap objects the process has allocated so
// far, exactly. Not runtime/metrics' /gc/heap/allocs:objects: that count
// is credited lazily, when a P's cached span is refilled or flushed (at a
// GC, for one), so a GC inside a window credited it with up to thousands
// of objects allocated before the window began (TestNoAllocsPerPacket
// failed so under load, with no allocation in the window at all).
// ReadMemStats flushes every P's cache first, in a stop of the world of
// some microseconds, once at each end of a window.
func heapAllocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// usage is a snapshot of the clocks and counters a window is measured
// with.
type usage struct {
	at        time.Time
	procCPU   time.Duration
	helperCPU time.Duration
	procIO    uint64
	helperIO  uint64
	ioOK      bool
	cpuBusy   map[int]time.Duration // per CPU, from /proc/stat: everything but idle and iowait
	// Heap objects the process had allocated when the snapshot began and
	// when it ended: a window runs from one's end to the next's beginning,
	// so the snapshots' own allocations stay out of it.
	allocsIn, allocsOut uint64
}

// clockTick is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture's ABI.
const clockTick = 10 * time.Millisecond

// cpuBusy reads how long each CPU has been busy (user, nice, system, irq,
// softirq, steal) since boot, whoever kept it busy.
func cpuBusy() map[int]time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	m := map[int]time.Duration{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		cpu, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var busy uint64
		for i, v := range f[1:9] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			busy += n
		}
		m[cpu] = time.Duration(busy) * clockTick
	}
	return m
}

// takeUsage snapshots the process and its helper threads. It must run
// while the helpers are alive (their clocks vanish with them).
func takeUsage(helpers []*helperThread) usage {
	u := usage{allocsIn: heapAllocs()}
	u.at, u.procCPU, u.ioOK, u.cpuBusy = time.Now(), processCPU(), true, cpuBusy()
	var err error
	if u.procIO, err = ioCalls("/proc/self/io"); err != nil {
		u.ioOK = false
	}
	for _, h := range helpers {
		tid := int(h.tid.Load())
		if tid == 0 {
			continue
		}
		if c, err := threadCPU(tid); err == nil {
			u.helperCPU += c
		}
		n, err := ioCalls(fmt.Sprintf("/proc/self/task/%d/io", tid))
		if err != nil {
			u.ioOK = false
		}
		u.helperIO += n
	}
	u.allocsOut = heapAllocs()
	return u
}

// span is what happened between two usage snapshots.
type span struct {
	elapsed   time.Duration
	engineCPU time.Duration // process minus helpers
	helperCPU time.Duration
	engineIO  uint64 // read/write-family calls outside the helpers
	ioOK      bool
	busy      map[int]time.Duration // per CPU, whoever kept it busy
	allocs    uint64                // heap objects allocated by the whole process
}

func spanOf(a, b usage) span {
	s := span{
		elapsed:   b.at.Sub(a.at),
		helperCPU: b.helperCPU - a.helperCPU,
		ioOK:      a.ioOK && b.ioOK,
		busy:      map[int]time.Duration{},
		allocs:    b.allocsIn - a.allocsOut,
	}
	for cpu, t := range b.cpuBusy {
		s.busy[cpu] = t - a.cpuBusy[cpu]
	}
	s.engineCPU = max(0, b.procCPU-a.procCPU-s.helperCPU)
	if s.ioOK {
		s.engineIO = (b.procIO - a.procIO) - (b.helperIO - a.helperIO)
	}
	return s
}

// pct is d as a percentage of one CPU over the span.
func (s span) pct(d time.Duration) float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return 100 * float64(d) / float64(s.elapsed)
}

func (s span) rate(n uint64) float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(n) / s.elapsed.Seconds()
}

// otherLoad is how much of cpu, in percent, something other than ours
// (other processes, kernel threads, interrupts) used over the span.
func (s span) otherLoad(cpu int, ours time.Duration) float64 {
	if cpu < 0 {
		return 0
	}
	return max(0, s.pct(s.busy[cpu]-ours))
}
