#include "textflag.h"

// func curg() uintptr
// Returns the runtime's pointer to the current goroutine (g), kept in
// thread-local storage on amd64. Only compared for identity, never
// dereferenced.
TEXT ·curg(SB),NOSPLIT,$0-8
	MOVQ (TLS), AX
	MOVQ AX, ret+0(FP)
	RET
