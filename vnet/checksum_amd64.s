//go:build amd64 && !purego

#include "textflag.h"

// func sumAVX2(b []byte) uint64
//
// Y14 holds 0x0000ffff in every 32-bit lane, Y13 0x00000000ffffffff in
// every 64-bit lane. Each iteration splits two 32-byte loads into their
// even and odd 16-bit words (mask and shift) and adds them into four
// accumulators of 32-bit lanes. A lane gains at most 0xffff per iteration,
// so chunks of 16384 iterations keep every lane below 2^30 and the sum of
// the four accumulators below 2^32; each chunk is then widened to 64 bits
// and added into AX.
TEXT ·sumAVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	SHRQ $6, CX
	XORQ AX, AX
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $16, Y15, Y14
	VPSRLQ $32, Y15, Y13

outer:
	TESTQ CX, CX
	JZ    done
	MOVQ  $16384, DX
	CMPQ  CX, DX
	CMOVQLT CX, DX
	SUBQ  DX, CX
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7

inner:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPAND   Y14, Y0, Y2
	VPSRLD  $16, Y0, Y0
	VPAND   Y14, Y1, Y3
	VPSRLD  $16, Y1, Y1
	VPADDD  Y2, Y4, Y4
	VPADDD  Y0, Y5, Y5
	VPADDD  Y3, Y6, Y6
	VPADDD  Y1, Y7, Y7
	ADDQ    $64, SI
	DECQ    DX
	JNZ     inner

	VPADDD Y5, Y4, Y4
	VPADDD Y7, Y6, Y6
	VPADDD Y6, Y4, Y4
	VPAND  Y13, Y4, Y5
	VPSRLQ $32, Y4, Y4
	VPADDQ Y5, Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPADDQ X5, X4, X4
	VPSHUFD $0x4e, X4, X5
	VPADDQ X5, X4, X4
	VMOVQ  X4, DX
	ADDQ   DX, AX
	JMP    outer

done:
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET

// func copySumAVX2(dst, src []byte) uint64
//
// sumAVX2 over src that also stores every 64 bytes it loads into dst, so a
// payload is copied and summed in one pass. len(src) must be a multiple of
// 64 and len(dst) at least len(src).
TEXT ·copySumAVX2(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	SHRQ $6, CX
	XORQ AX, AX
	VPCMPEQD Y15, Y15, Y15
	VPSRLD $16, Y15, Y14
	VPSRLQ $32, Y15, Y13

couter:
	TESTQ CX, CX
	JZ    cdone
	MOVQ  $16384, DX
	CMPQ  CX, DX
	CMOVQLT CX, DX
	SUBQ  DX, CX
	VPXOR Y4, Y4, Y4
	VPXOR Y5, Y5, Y5
	VPXOR Y6, Y6, Y6
	VPXOR Y7, Y7, Y7

cinner:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	VPAND   Y14, Y0, Y2
	VPSRLD  $16, Y0, Y0
	VPAND   Y14, Y1, Y3
	VPSRLD  $16, Y1, Y1
	VPADDD  Y2, Y4, Y4
	VPADDD  Y0, Y5, Y5
	VPADDD  Y3, Y6, Y6
	VPADDD  Y1, Y7, Y7
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    DX
	JNZ     cinner

	VPADDD Y5, Y4, Y4
	VPADDD Y7, Y6, Y6
	VPADDD Y6, Y4, Y4
	VPAND  Y13, Y4, Y5
	VPSRLQ $32, Y4, Y4
	VPADDQ Y5, Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPADDQ X5, X4, X4
	VPSHUFD $0x4e, X4, X5
	VPADDQ X5, X4, X4
	VMOVQ  X4, DX
	ADDQ   DX, AX
	JMP    couter

cdone:
	VZEROUPPER
	MOVQ AX, ret+48(FP)
	RET
