// Test programs for LoadProgram, written for this repository. Rebuild the
// object with ./build.sh after changing this file.
//
// Section "socket" holds a socket filter for a TUN device carrying IPv6: it
// drops UDP datagrams to port 7777 that follow the fixed header directly
// and passes everything else whole. Section "xdp" holds a program of
// another type, which LoadProgram must refuse.

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

// struct __sk_buff begins with the packet length.
struct skb_head {
	u32 len;
};

// bpf_skb_load_bytes is helper number 26 (include/uapi/linux/bpf.h).
static long (*skb_load_bytes)(const void *skb, u32 offset, void *to, u32 len) = (void *)26;

#define SEC(name) __attribute__((section(name), used))

SEC("socket")
int drop_udp_7777(struct skb_head *skb)
{
	u8 hdr[44];

	if (skb_load_bytes(skb, 0, hdr, sizeof(hdr)) < 0)
		return skb->len;
	if ((hdr[0] >> 4) != 6 || hdr[6] != 17)
		return skb->len;
	if (((u16)hdr[42] << 8 | hdr[43]) == 7777)
		return 0;
	return skb->len;
}

SEC("xdp")
int pass_all(void *ctx)
{
	return 2; // XDP_PASS
}

char _license[] SEC("license") = "Dual MIT/GPL";
