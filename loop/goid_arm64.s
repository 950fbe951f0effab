#include "textflag.h"

// func curg() uintptr
// Returns the runtime's pointer to the current goroutine (g), kept in the
// dedicated g register on arm64. Only compared for identity.
TEXT ·curg(SB),NOSPLIT,$0-8
	MOVD g, R0
	MOVD R0, ret+0(FP)
	RET
