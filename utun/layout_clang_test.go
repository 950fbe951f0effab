package utun

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// xnuDecls declares the XNU structs the package builds, type for type as
// the headers named in each comment have them (only the types matter for
// the layout, so counter arrays stand for their named fields), and the
// _IOC macro of bsd/sys/ioccom.h. No system header is included: clang's
// Darwin targets supply the ABI, and the declarations the types.
const xnuDecls = `
typedef unsigned char u_char;
typedef unsigned short u_int16_t;
typedef unsigned int u_int32_t;
typedef unsigned long long u_int64_t;
typedef u_int64_t u_quad_t;
typedef long time_t;                 /* __darwin_time_t */
typedef char *caddr_t;
typedef u_char sa_family_t;
typedef u_int16_t in_port_t;

#define IFNAMSIZ 16
#define MAX_KCTL_NAME 96
#define SCOPE6_ID_MAX 16

/* bsd/sys/socket.h */
struct sockaddr { u_char sa_len; sa_family_t sa_family; char sa_data[14]; };

/* bsd/netinet/in.h */
struct in_addr { u_int32_t s_addr; };
struct sockaddr_in {
	u_char sin_len; sa_family_t sin_family; in_port_t sin_port;
	struct in_addr sin_addr; char sin_zero[8];
};

/* bsd/netinet6/in6.h */
struct in6_addr { union { u_char a8[16]; u_int16_t a16[8]; u_int32_t a32[4]; } u; };
struct sockaddr_in6 {
	u_char sin6_len; sa_family_t sin6_family; in_port_t sin6_port;
	u_int32_t sin6_flowinfo; struct in6_addr sin6_addr; u_int32_t sin6_scope_id;
};

/* bsd/sys/kern_control.h */
struct ctl_info { u_int32_t ctl_id; char ctl_name[MAX_KCTL_NAME]; };
struct sockaddr_ctl {
	u_char sc_len; u_char sc_family; u_int16_t ss_sysaddr;
	u_int32_t sc_id; u_int32_t sc_unit; u_int32_t sc_reserved[5];
};

/* bsd/net/if.h */
struct ifdevmtu { int ifdm_current; int ifdm_min; int ifdm_max; };
#pragma pack(4)
struct ifkpi {
	unsigned int ifk_module_id; unsigned int ifk_type;
	union { void *ifk_ptr; int ifk_value; } ifk_data;
};
#pragma pack()
struct ifreq {
	char ifr_name[IFNAMSIZ];
	union {
		struct sockaddr ifru_addr; struct sockaddr ifru_dstaddr;
		struct sockaddr ifru_broadaddr; short ifru_flags; int ifru_metric;
		int ifru_mtu; int ifru_phys; int ifru_media; int ifru_intval;
		caddr_t ifru_data; struct ifdevmtu ifru_devmtu; struct ifkpi ifru_kpi;
		u_int32_t ifru_wake_flags; u_int32_t ifru_route_refcnt;
		int ifru_cap[2]; u_int32_t ifru_functional_type;
	} ifr_ifru;
};
struct ifaliasreq {
	char ifra_name[IFNAMSIZ];
	struct sockaddr ifra_addr; struct sockaddr ifra_broadaddr; struct sockaddr ifra_mask;
};

/* bsd/netinet6/in6_var.h */
struct in6_addrlifetime {
	time_t ia6t_expire; time_t ia6t_preferred;
	u_int32_t ia6t_vltime; u_int32_t ia6t_pltime;
};
struct in6_ifstat { u_quad_t counters[25]; };
struct icmp6_ifstat { u_quad_t in[17]; u_quad_t out[17]; };
struct in6_ifreq {
	char ifr_name[IFNAMSIZ];
	union {
		struct sockaddr_in6 ifru_addr; struct sockaddr_in6 ifru_dstaddr;
		int ifru_flags; int ifru_flags6; int ifru_metric; int ifru_intval;
		caddr_t ifru_data; struct in6_addrlifetime ifru_lifetime;
		struct in6_ifstat ifru_stat; struct icmp6_ifstat ifru_icmp6stat;
		u_int32_t ifru_scope_id[SCOPE6_ID_MAX];
	} ifr_ifru;
};
struct in6_aliasreq {
	char ifra_name[IFNAMSIZ];
	struct sockaddr_in6 ifra_addr; struct sockaddr_in6 ifra_dstaddr;
	struct sockaddr_in6 ifra_prefixmask; int ifra_flags;
	struct in6_addrlifetime ifra_lifetime;
};

/* bsd/sys/ioccom.h */
#define IOCPARM_MASK 0x1fff
#define IOC_OUT   0x40000000UL
#define IOC_IN    0x80000000UL
#define IOC_INOUT (IOC_IN | IOC_OUT)
#define _IOC(inout, group, num, len) \
	((inout) | (((len) & IOCPARM_MASK) << 16) | ((group) << 8) | (num))
#define _IOW(g, n, t)  _IOC(IOC_IN, (g), (n), sizeof(t))
#define _IOWR(g, n, t) _IOC(IOC_INOUT, (g), (n), sizeof(t))

#define OFF(t, f) __builtin_offsetof(struct t, f)
`

// TestLayoutWithClang compiles the XNU declarations for darwin/arm64 and
// darwin/amd64 with clang, when it is installed, and has the compiler
// assert every size, offset and request number the package uses: the
// Darwin ABI itself checks layout.go and consts.go. Nothing runs; it needs
// no macOS SDK.
func TestLayoutWithClang(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not installed")
	}
	asserts := []struct {
		expr string
		want uint64
	}{
		{"sizeof(struct sockaddr)", sizeofSockaddr},
		{"sizeof(struct sockaddr_in)", sizeofSockaddrIn},
		{"OFF(sockaddr_in, sin_len)", offSinLen},
		{"OFF(sockaddr_in, sin_family)", offSinFamily},
		{"OFF(sockaddr_in, sin_addr)", offSinAddr},
		{"sizeof(struct sockaddr_in6)", sizeofSockaddrIn6},
		{"OFF(sockaddr_in6, sin6_len)", offSin6Len},
		{"OFF(sockaddr_in6, sin6_family)", offSin6Family},
		{"OFF(sockaddr_in6, sin6_addr)", offSin6Addr},
		{"OFF(sockaddr_in6, sin6_scope_id)", offSin6ScopeID},
		{"sizeof(struct ctl_info)", sizeofCtlInfo},
		{"OFF(ctl_info, ctl_id)", offCtlID},
		{"OFF(ctl_info, ctl_name)", offCtlName},
		{"sizeof(struct sockaddr_ctl)", sizeofSockaddrCtl},
		{"OFF(sockaddr_ctl, sc_len)", offScLen},
		{"OFF(sockaddr_ctl, sc_family)", offScFamily},
		{"OFF(sockaddr_ctl, ss_sysaddr)", offScSysaddr},
		{"OFF(sockaddr_ctl, sc_id)", offScID},
		{"OFF(sockaddr_ctl, sc_unit)", offScUnit},
		{"sizeof(struct ifkpi)", 16},
		{"sizeof(struct ifreq)", sizeofIfreq},
		{"OFF(ifreq, ifr_name)", offIfrName},
		{"OFF(ifreq, ifr_ifru.ifru_addr)", offIfrAddr},
		{"OFF(ifreq, ifr_ifru.ifru_flags)", offIfrFlags},
		{"sizeof(((struct ifreq *)0)->ifr_ifru.ifru_flags)", 2},
		{"OFF(ifreq, ifr_ifru.ifru_mtu)", offIfrMTU},
		{"sizeof(((struct ifreq *)0)->ifr_ifru.ifru_mtu)", 4},
		{"sizeof(struct ifaliasreq)", sizeofIfaliasreq},
		{"OFF(ifaliasreq, ifra_addr)", offIfraAddr},
		{"OFF(ifaliasreq, ifra_broadaddr)", offIfraBroadaddr},
		{"OFF(ifaliasreq, ifra_mask)", offIfraMask},
		{"sizeof(struct icmp6_ifstat)", sizeofIcmp6Ifstat},
		{"sizeof(struct in6_ifreq)", sizeofIn6Ifreq},
		{"OFF(in6_ifreq, ifr_ifru.ifru_addr)", offIn6IfrAddr},
		{"sizeof(struct in6_aliasreq)", sizeofIn6Aliasreq},
		{"OFF(in6_aliasreq, ifra_addr)", offIn6IfraAddr},
		{"OFF(in6_aliasreq, ifra_dstaddr)", offIn6IfraDstaddr},
		{"OFF(in6_aliasreq, ifra_prefixmask)", offIn6IfraPrefixmask},
		{"OFF(in6_aliasreq, ifra_flags)", offIn6IfraFlags},
		{"OFF(in6_aliasreq, ifra_lifetime.ia6t_expire)", offIn6IfraExpire},
		{"OFF(in6_aliasreq, ifra_lifetime.ia6t_preferred)", offIn6IfraPreferred},
		{"OFF(in6_aliasreq, ifra_lifetime.ia6t_vltime)", offIn6IfraVltime},
		{"OFF(in6_aliasreq, ifra_lifetime.ia6t_pltime)", offIn6IfraPltime},
		{"_IOWR('N', 3, struct ctl_info)", ctlIOCGInfo},
		{"_IOW('i', 16, struct ifreq)", siocSIFFlags},
		{"_IOWR('i', 17, struct ifreq)", siocGIFFlags},
		{"_IOW('i', 25, struct ifreq)", siocDIFAddr},
		{"_IOW('i', 26, struct ifaliasreq)", siocAIFAddr},
		{"_IOWR('i', 51, struct ifreq)", siocGIFMTU},
		{"_IOW('i', 52, struct ifreq)", siocSIFMTU},
		{"_IOW('i', 25, struct in6_ifreq)", siocDIFAddrIn6},
		{"_IOW('i', 26, struct in6_aliasreq)", siocAIFAddrIn6},
	}
	var src strings.Builder
	src.WriteString(xnuDecls)
	for i, a := range asserts {
		fmt.Fprintf(&src, "_Static_assert((%s) == %#xUL, \"check %d: %s == %#x\");\n", a.expr, a.want, i, strings.ReplaceAll(a.expr, `"`, `'`), a.want)
	}
	file := filepath.Join(t.TempDir(), "xnu_layout.c")
	if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"arm64-apple-macos11", "x86_64-apple-macos10.15"} {
		out, err := exec.Command(clang, "-target", target, "-std=c11", "-fsyntax-only", "-Werror", file).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "static assertion failed") || strings.Contains(string(out), "static_assert") {
				t.Errorf("%s:\n%s", target, out)
			} else {
				t.Skipf("clang cannot compile for %s here: %v\n%s", target, err, out)
			}
		}
	}
}
