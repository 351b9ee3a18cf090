/*
 * bpfload: eBPF objects for `periscope bpf` (BpfViewsTests), with the raw bpf() syscall (no toolchain in the guest).
 *
 *   bpfload          load an array map and three programs, attach two, print what was attached, then hold them:
 *                    - "pscope_sf"  socket filter that looks up the map, attached to a UDP socket (SO_ATTACH_BPF);
 *                    - "pscope_cg"  cgroup skb ingress program, attached to /sys/fs/cgroup/pscope by a bpf link;
 *                    - "pscope_xdp" XDP program (XDP_PASS), attached to lo in generic (skb) mode by a bpf link;
 *                    - "pscope_wu"  tracepoint program calling bpf_probe_write_user (loaded, not attached).
 *                    Writes /tmp/bpfload.ready when everything is in place.
 *   bpfload list     the kernel's own view, as bpftool prints it: every program, map and link by id, with
 *                    BPF_OBJ_GET_INFO_BY_FD's type, name, tag, map ids and attach details.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

static long sys_bpf(int cmd, union bpf_attr *attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

static char log_buf[65536];

static int load(enum bpf_prog_type type, int attach_type, const char *name, const struct bpf_insn *insns, int count)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = type;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = count;
	a.license = (uint64_t)(uintptr_t)"GPL";
	a.log_buf = (uint64_t)(uintptr_t)log_buf;
	a.log_size = sizeof(log_buf);
	a.log_level = 1;
	a.expected_attach_type = attach_type;
	strncpy(a.prog_name, name, sizeof(a.prog_name) - 1);
	int fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0) fprintf(stderr, "bpfload: load %s: %s\n%s\n", name, strerror(errno), log_buf);
	return fd;
}

static uint32_t prog_id(int fd)
{
	struct bpf_prog_info info;
	union bpf_attr a;
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = fd;
	a.info.info_len = sizeof(info);
	a.info.info = (uint64_t)(uintptr_t)&info;
	return sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0 ? info.id : 0;
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

static int hold(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 8;
	a.max_entries = 4;
	strncpy(a.map_name, "pscope_map", sizeof(a.map_name) - 1);
	int map = sys_bpf(BPF_MAP_CREATE, &a);
	if (map < 0) { perror("bpfload: map"); return 1; }

	/* *(u32 *)(r10 - 4) = 0; r2 = r10 - 4; r1 = map; call map_lookup_elem; r0 = -1; exit */
	struct bpf_insn sf[] = {
		INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
		INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map),
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	/* r0 = 1 (let the packet in); exit */
	struct bpf_insn cg[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	/* r0 = XDP_PASS; exit (loopback traffic of other tests keeps flowing) */
	struct bpf_insn xdp[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	/* *(u64 *)(r10 - 8) = 0; r1 = 0; r2 = r10 - 8; r3 = 8; call probe_write_user; r0 = 0; exit */
	struct bpf_insn wu[] = {
		INSN(BPF_ST | BPF_MEM | BPF_DW, BPF_REG_10, 0, -8, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -8),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 8),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_probe_write_user),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	int sfp = load(BPF_PROG_TYPE_SOCKET_FILTER, 0, "pscope_sf", sf, sizeof(sf) / sizeof(sf[0]));
	int cgp = load(BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, "pscope_cg", cg, sizeof(cg) / sizeof(cg[0]));
	int xdpp = load(BPF_PROG_TYPE_XDP, BPF_XDP, "pscope_xdp", xdp, sizeof(xdp) / sizeof(xdp[0]));
	int wup = load(BPF_PROG_TYPE_TRACEPOINT, 0, "pscope_wu", wu, sizeof(wu) / sizeof(wu[0]));
	if (sfp < 0 || cgp < 0 || xdpp < 0 || wup < 0) return 1;

	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &sfp, sizeof(sfp)) != 0) { perror("bpfload: SO_ATTACH_BPF"); return 1; }
	mkdir("/sys/fs/cgroup/pscope", 0755);
	int cgdir = open("/sys/fs/cgroup/pscope", O_RDONLY | O_DIRECTORY);
	if (cgdir < 0) { perror("bpfload: cgroup"); return 1; }
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = cgp;
	a.link_create.target_fd = cgdir;
	a.link_create.attach_type = BPF_CGROUP_INET_INGRESS;
	int link = sys_bpf(BPF_LINK_CREATE, &a);
	if (link < 0) { perror("bpfload: link"); return 1; }

	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = xdpp;
	a.link_create.target_ifindex = 1; /* lo */
	a.link_create.attach_type = BPF_XDP;
	a.link_create.flags = 2; /* XDP_FLAGS_SKB_MODE: generic XDP, dev->xdp_prog */
	if (sys_bpf(BPF_LINK_CREATE, &a) < 0) { perror("bpfload: xdp link"); return 1; }

	printf("attach socket_filter %u\nattach cgroup_inet_ingress %u\nattach xdp %u\n", prog_id(sfp), prog_id(cgp), prog_id(xdpp));
	fflush(stdout);
	int ready = open("/tmp/bpfload.ready", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (ready >= 0) close(ready);
	for (;;) pause();
}

static void hex(const unsigned char *b, int n)
{
	for (int i = 0; i < n; i++) printf("%02x", b[i]);
}

/* One line per object: "prog ID TYPE NAME TAG JITED_LEN XLATED_LEN MAP_IDS", "map ID TYPE NAME KEY VALUE MAX",
 * "link ID TYPE PROG_ID". */
static int list(void)
{
	union bpf_attr a;
	uint32_t id = 0;
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.start_id = id;
		if (sys_bpf(BPF_PROG_GET_NEXT_ID, &a) != 0) break;
		id = a.next_id;
		memset(&a, 0, sizeof(a));
		a.prog_id = id;
		int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
		if (fd < 0) continue;
		uint32_t maps[64];
		struct bpf_prog_info info;
		memset(&info, 0, sizeof(info));
		info.nr_map_ids = 64;
		info.map_ids = (uint64_t)(uintptr_t)maps;
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = fd;
		a.info.info_len = sizeof(info);
		a.info.info = (uint64_t)(uintptr_t)&info;
		if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0) {
			printf("prog %u %u %s ", info.id, info.type, info.name[0] ? info.name : "-");
			hex(info.tag, sizeof(info.tag));
			printf(" %u %u ", info.jited_prog_len, info.xlated_prog_len);
			if (info.nr_map_ids == 0) printf("-");
			for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++) printf(i ? ",%u" : "%u", maps[i]);
			printf("\n");
		}
		close(fd);
	}
	id = 0;
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.start_id = id;
		if (sys_bpf(BPF_MAP_GET_NEXT_ID, &a) != 0) break;
		id = a.next_id;
		memset(&a, 0, sizeof(a));
		a.map_id = id;
		int fd = sys_bpf(BPF_MAP_GET_FD_BY_ID, &a);
		if (fd < 0) continue;
		struct bpf_map_info info;
		memset(&info, 0, sizeof(info));
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = fd;
		a.info.info_len = sizeof(info);
		a.info.info = (uint64_t)(uintptr_t)&info;
		if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0)
			printf("map %u %u %s %u %u %u\n", info.id, info.type, info.name[0] ? info.name : "-", info.key_size, info.value_size, info.max_entries);
		close(fd);
	}
	id = 0;
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.start_id = id;
		if (sys_bpf(BPF_LINK_GET_NEXT_ID, &a) != 0) break;
		id = a.next_id;
		memset(&a, 0, sizeof(a));
		a.link_id = id;
		int fd = sys_bpf(BPF_LINK_GET_FD_BY_ID, &a);
		if (fd < 0) continue;
		struct bpf_link_info info;
		memset(&info, 0, sizeof(info));
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = fd;
		a.info.info_len = sizeof(info);
		a.info.info = (uint64_t)(uintptr_t)&info;
		if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) == 0) printf("link %u %u %u\n", info.id, info.type, info.prog_id);
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "list") == 0) return list();
	return hold();
}
