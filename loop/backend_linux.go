package loop

import "os"

// newBackend picks the loop's backend: epoll unless io_uring is asked for
// (by option, or by TUNDRA_LOOP_BACKEND under BackendAuto) and usable.
func newBackend(cfg *config) (backend, Backend, error) {
	want := cfg.backend
	if want == BackendAuto {
		want = envBackend()
	}
	switch want {
	case BackendAuto, BackendEpoll:
	case BackendURing:
		if p, err := newURing(cfg.maxEvents); err == nil {
			return p, BackendURing, nil
		}
		// Unavailable: epoll, as documented; URingUnavailable says why.
	default:
		return nil, 0, &OpError{Op: "new: backend " + want.String(), Fd: -1, Err: ErrNotSupported}
	}
	p, err := newPoller(cfg.maxEvents)
	if err != nil {
		return nil, 0, err
	}
	return p, BackendEpoll, nil
}

// envBackend reads TUNDRA_LOOP_BACKEND, the override BackendAuto obeys.
func envBackend() Backend {
	switch os.Getenv("TUNDRA_LOOP_BACKEND") {
	case "uring", "io_uring":
		return BackendURing
	case "epoll":
		return BackendEpoll
	case "kqueue":
		return BackendKqueue
	}
	return BackendAuto
}
