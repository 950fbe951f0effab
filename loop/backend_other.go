//go:build !linux

package loop

import "runtime"

// newBackend: outside Linux there is one backend (kqueue on macOS, none
// elsewhere); asking for another is refused.
func newBackend(cfg *config) (backend, Backend, error) {
	native := BackendKqueue
	if runtime.GOOS != "darwin" {
		native = BackendAuto
	}
	want := cfg.backend // TUNDRA_LOOP_BACKEND names Linux backends: not read here
	if want != BackendAuto && want != native {
		return nil, 0, &OpError{Op: "new: backend " + want.String(), Fd: -1, Err: ErrNotSupported}
	}
	p, err := newPoller(cfg.maxEvents)
	if err != nil {
		return nil, 0, err
	}
	return p, native, nil
}

// URingUnavailable says why io_uring cannot be used: always, here.
func URingUnavailable() error {
	return &OpError{Op: "io_uring", Fd: -1, Err: ErrNotSupported}
}
