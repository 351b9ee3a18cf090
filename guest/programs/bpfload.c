/*
 * bpfload: eBPF objects for `periscope bpf` (BpfViewsTests), with the raw bpf() syscall (no toolchain in the guest).
 *
 *   bpfload          load an array map and three programs, attach two, print what was attached, then hold them:
 *                    - "pscope_sf"  socket filter that looks up the map, attached to a UDP socket (SO_ATTACH_BPF);
 *                    - "pscope_cg"  cgroup skb ingress program, attached to /sys/fs/cgroup/pscope by a bpf link;
 *                    - "pscope_xdp" XDP program (XDP_PASS), attached to lo in generic (skb) mode by a bpf link;
 *                    - "pscope_wu"  tracepoint program calling bpf_probe_write_user (loaded, not attached);
 *                    - "pscope_tc"  on 6.6+: a tcx ingress program on lo (TCX_NEXT), attached by a bpf link;
 *                                   before 6.6: a cls_bpf filter (direct action, TC_ACT_OK) on lo's clsact ingress,
 *                                   made over rtnetlink as `tc filter add dev lo ingress bpf da` does.
 *                    Writes /tmp/bpfload.ready when everything is in place.
 *   bpfload tracing  load four tracing programs, attach them, print what was attached, then hold them:
 *                    - "pscope_kp"  kprobe program on do_sys_openat2, attached through a kprobe perf event
 *                                   (perf_event_open on the "kprobe" PMU + PERF_EVENT_IOC_SET_BPF, no link);
 *                    - "pscope_krp" the same as a kretprobe;
 *                    - "pscope_tp"  tracepoint program on sched:sched_process_exec (PERF_TYPE_TRACEPOINT event);
 *                    - "pscope_fe"  fentry program on do_sys_openat2 (BTF id found in /sys/kernel/btf/vmlinux),
 *                                   attached by BPF_RAW_TRACEPOINT_OPEN: a bpf trampoline and a tracing link.
 *                    Writes /tmp/bpfload-tracing.ready when everything is in place. A separate process because the
 *                    kprobe and the trampoline patch do_sys_openat2's ftrace site: guests shared with integrity
 *                    tests run it only while they need it, and end it.
 *   bpfload fentry FUNC  one fentry program, "pscope_fv", on FUNC only; writes /tmp/bpfload-fentry.ready (verify's
 *                    bpf trampoline rule: BpfTrampolineVerifyTests).
 *   bpfload list     the kernel's own view, as bpftool prints it: every program, map and link by id, with
 *                    BPF_OBJ_GET_INFO_BY_FD's type, name, tag, map ids and attach details; and, as `bpftool perf`,
 *                    every perf event fd of every process that has a program (BPF_TASK_FD_QUERY).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/perf_event.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
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

/* The first line of a small sysfs/tracefs file as a number, or -1. */
static long read_number(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY);
	if (fd < 0) return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* The BTF type id of the kernel function NAME in /sys/kernel/btf/vmlinux (what libbpf's btf__find_by_name_kind does),
 * or -1. Walks the type section by each kind's documented trailing size (include/uapi/linux/btf.h). */
static int btf_func_id(const char *name)
{
	static char blob[16 << 20];
	int fd = open("/sys/kernel/btf/vmlinux", O_RDONLY);
	if (fd < 0) return -1;
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(blob) && (n = read(fd, blob + len, sizeof(blob) - len)) > 0) len += n;
	close(fd);
	struct btf_header *h = (struct btf_header *)blob;
	if (len < sizeof(*h) || h->magic != BTF_MAGIC) return -1;
	const char *types = blob + h->hdr_len + h->type_off, *end = types + h->type_len;
	const char *strings = blob + h->hdr_len + h->str_off;
	int id = 1;
	for (const char *p = types; p + sizeof(struct btf_type) <= end; id++) {
		const struct btf_type *t = (const struct btf_type *)p;
		int vlen = BTF_INFO_VLEN(t->info), kind = BTF_INFO_KIND(t->info);
		if (kind == BTF_KIND_FUNC && strcmp(strings + t->name_off, name) == 0) return id;
		p += sizeof(*t);
		switch (kind) {
		case BTF_KIND_INT: case BTF_KIND_VAR: case 17 /* DECL_TAG */: p += 4; break;
		case BTF_KIND_ARRAY: p += sizeof(struct btf_array); break;
		case BTF_KIND_STRUCT: case BTF_KIND_UNION: p += vlen * sizeof(struct btf_member); break;
		case BTF_KIND_ENUM: p += vlen * sizeof(struct btf_enum); break;
		case 19 /* ENUM64 */: p += vlen * 12; break;
		case BTF_KIND_FUNC_PROTO: p += vlen * sizeof(struct btf_param); break;
		case BTF_KIND_DATASEC: p += vlen * sizeof(struct btf_var_secinfo); break;
		default: break; /* PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: nothing follows */
		}
	}
	return -1;
}

/* A perf event for PROG: a kprobe (retprobe: a kretprobe) on FUNC through the dynamic "kprobe" PMU, or, with FUNC
 * NULL, the tracepoint whose tracefs id is CONFIG; the program is attached with PERF_EVENT_IOC_SET_BPF (no bpf link). */
static int perf_attach(int prog, const char *func, int retprobe, long config)
{
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.sample_period = 1;
	attr.wakeup_events = 1;
	if (func) {
		attr.type = read_number("/sys/bus/event_source/devices/kprobe/type");
		attr.config = retprobe ? 1 : 0; /* format/retprobe: config:0 */
		attr.config1 = (uint64_t)(uintptr_t)func;
	} else {
		attr.type = PERF_TYPE_TRACEPOINT;
		attr.config = config;
	}
	int fd = syscall(__NR_perf_event_open, &attr, -1 /* any task */, 0 /* cpu 0 */, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) { perror(func ? "bpfload: perf_event_open kprobe" : "bpfload: perf_event_open tracepoint"); return -1; }
	if (ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog) != 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
		perror("bpfload: PERF_EVENT_IOC_SET_BPF");
		return -1;
	}
	return fd;
}

/* BPF_TCX_INGRESS (6.6+): the value after BPF_LSM_CGROUP, BPF_STRUCT_OPS and BPF_NETFILTER in enum bpf_attach_type;
 * the build host's headers may predate it. */
#define ATTACH_TCX_INGRESS (BPF_LSM_CGROUP + 3)

/* Whether the running kernel is at least MAJOR.MINOR. */
static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;
	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2) return 0;
	return ma > major || (ma == major && mi >= minor);
}

/* One rtnetlink request (NLM_F_ACK), answered by an NLMSG_ERROR whose error is 0 on success. */
static int rtnl_request(struct nlmsghdr *req)
{
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0) return -1;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	char answer[4096];
	int err = -1;
	if (sendto(nl, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) == (ssize_t)req->nlmsg_len) {
		ssize_t n = recv(nl, answer, sizeof(answer), 0);
		struct nlmsghdr *h = (struct nlmsghdr *)answer;
		if (n >= (ssize_t)(sizeof(*h) + sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR) {
			err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (err) errno = -err;
		}
	}
	close(nl);
	return err;
}

/* Appends attribute TYPE with LEN bytes of DATA to the message in BUF; returns the attribute. */
static struct rtattr *rta_add(struct nlmsghdr *m, int type, const void *data, int len)
{
	struct rtattr *rta = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->nlmsg_len));
	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	if (len) memcpy(RTA_DATA(rta), data, len);
	m->nlmsg_len = NLMSG_ALIGN(m->nlmsg_len) + RTA_ALIGN(rta->rta_len);
	return rta;
}

/* `tc qdisc add dev lo clsact` then `tc filter add dev lo ingress bpf da fd PROG name NAME` (pre-6.6 TC). */
static int attach_cls_bpf(int prog, const char *name)
{
	union { struct nlmsghdr h; char buf[1024]; } q;
	memset(&q, 0, sizeof(q));
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg));
	q.h.nlmsg_type = RTM_NEWQDISC;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	struct tcmsg *t = NLMSG_DATA(&q.h);
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = 1; /* lo */
	t->tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
	t->tcm_parent = TC_H_CLSACT;
	rta_add(&q.h, TCA_KIND, "clsact", sizeof("clsact"));
	if (rtnl_request(&q.h) != 0) { perror("bpfload: clsact qdisc"); return -1; }

	memset(&q, 0, sizeof(q));
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg));
	q.h.nlmsg_type = RTM_NEWTFILTER;
	q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	t = NLMSG_DATA(&q.h);
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = 1;
	t->tcm_handle = 1;
	t->tcm_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
	t->tcm_info = TC_H_MAKE(1 << 16, htons(ETH_P_ALL)); /* priority 1, every protocol */
	rta_add(&q.h, TCA_KIND, "bpf", sizeof("bpf"));
	struct rtattr *opts = rta_add(&q.h, TCA_OPTIONS, NULL, 0);
	uint32_t fd = prog, flags = TCA_BPF_FLAG_ACT_DIRECT;
	rta_add(&q.h, TCA_BPF_FD, &fd, sizeof(fd));
	rta_add(&q.h, TCA_BPF_NAME, name, strlen(name) + 1);
	rta_add(&q.h, TCA_BPF_FLAGS, &flags, sizeof(flags));
	opts->rta_len = (char *)&q.h + q.h.nlmsg_len - (char *)opts;
	if (rtnl_request(&q.h) != 0) { perror("bpfload: cls_bpf filter"); return -1; }
	return 0;
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

	int tcp = -1, cls_bpf = 0;
	if (kernel_at_least(6, 6)) {
		/* r0 = TCX_NEXT (-1): pass the packet on; exit */
		struct bpf_insn tc[] = {
			INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1),
			INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
		};
		tcp = load(BPF_PROG_TYPE_SCHED_CLS, ATTACH_TCX_INGRESS, "pscope_tc", tc, 2);
		if (tcp < 0) return 1;
		memset(&a, 0, sizeof(a));
		a.link_create.prog_fd = tcp;
		a.link_create.target_ifindex = 1; /* lo */
		a.link_create.attach_type = ATTACH_TCX_INGRESS;
		if (sys_bpf(BPF_LINK_CREATE, &a) < 0) { perror("bpfload: tcx link"); return 1; }
	} else {
		/* r0 = TC_ACT_OK; exit (a direct-action classifier that lets every packet through) */
		struct bpf_insn tc[] = {
			INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, TC_ACT_OK),
			INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
		};
		/* Needs the sch_ingress and cls_bpf modules, which only the eBPF guest loads (guest/start.d/52-bpf.sh): elsewhere
		 * (the tamper guest) the program is dropped and the other attachments stay as they are. */
		tcp = load(BPF_PROG_TYPE_SCHED_CLS, 0, "pscope_tc", tc, 2);
		if (tcp < 0) return 1;
		if (attach_cls_bpf(tcp, "pscope_cls") == 0) cls_bpf = 1;
		else { close(tcp); tcp = -1; }
	}

	printf("attach socket_filter %u\nattach cgroup_inet_ingress %u\nattach xdp %u\n", prog_id(sfp), prog_id(cgp), prog_id(xdpp));
	if (tcp >= 0) printf("attach %s %u\n", cls_bpf ? "tc_ingress" : "tcx_ingress", prog_id(tcp));
	fflush(stdout);
	int ready = open("/tmp/bpfload.ready", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (ready >= 0) close(ready);
	for (;;) pause();
}

/* An fentry program NAME on the kernel function FUNC (its BTF id from /sys/kernel/btf/vmlinux), loaded, not attached. */
static int load_fentry(const char *func, const char *name, const struct bpf_insn *insns, int count)
{
	int btf_id = btf_func_id(func);
	if (btf_id < 0) { fprintf(stderr, "bpfload: no BTF id for %s\n", func); return -1; }
	union bpf_attr fa;
	memset(&fa, 0, sizeof(fa));
	fa.prog_type = BPF_PROG_TYPE_TRACING;
	fa.expected_attach_type = BPF_TRACE_FENTRY;
	fa.attach_btf_id = btf_id;
	fa.insns = (uint64_t)(uintptr_t)insns;
	fa.insn_cnt = count;
	fa.license = (uint64_t)(uintptr_t)"GPL";
	fa.log_buf = (uint64_t)(uintptr_t)log_buf;
	fa.log_size = sizeof(log_buf);
	fa.log_level = 1;
	strncpy(fa.prog_name, name, sizeof(fa.prog_name) - 1);
	int fd = sys_bpf(BPF_PROG_LOAD, &fa);
	if (fd < 0) fprintf(stderr, "bpfload: load %s: %s\n%s\n", name, strerror(errno), log_buf);
	return fd;
}

/* `bpfload fentry FUNC`: one fentry program, "pscope_fv", on FUNC and nothing else, so FUNC's ftrace site calls the bpf
 * trampoline's image directly (an ftrace direct call with no other ftrace user); for verify's trampoline rule. */
static int hold_fentry(const char *func)
{
	struct bpf_insn nop[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	int fep = load_fentry(func, "pscope_fv", nop, 2);
	if (fep < 0) return 1;
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.raw_tracepoint.prog_fd = fep;
	if (sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &a) < 0) { perror("bpfload: fentry attach"); return 1; }
	printf("attach fentry %u\n", prog_id(fep));
	fflush(stdout);
	int ready = open("/tmp/bpfload-fentry.ready", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (ready >= 0) close(ready);
	for (;;) pause();
}

static int hold_tracing(void)
{
	/* r0 = 0; exit (kprobes, kretprobes, tracepoints and fentry: nothing to do) */
	struct bpf_insn nop[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	union bpf_attr a;
	int kpp = load(BPF_PROG_TYPE_KPROBE, 0, "pscope_kp", nop, 2);
	int krpp = load(BPF_PROG_TYPE_KPROBE, 0, "pscope_krp", nop, 2);
	int tpp = load(BPF_PROG_TYPE_TRACEPOINT, 0, "pscope_tp", nop, 2);
	int fep = load_fentry("do_sys_openat2", "pscope_fe", nop, 2);
	if (kpp < 0 || krpp < 0 || tpp < 0 || fep < 0) return 1;
	if (perf_attach(kpp, "do_sys_openat2", 0, 0) < 0 || perf_attach(krpp, "do_sys_openat2", 1, 0) < 0) return 1;
	struct stat st;
	if (stat("/sys/kernel/tracing/events", &st) != 0) mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL);
	long tp = read_number("/sys/kernel/tracing/events/sched/sched_process_exec/id");
	if (tp < 0) { perror("bpfload: sched_process_exec id"); return 1; }
	if (perf_attach(tpp, NULL, 0, tp) < 0) return 1;
	memset(&a, 0, sizeof(a));
	a.raw_tracepoint.prog_fd = fep;
	if (sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &a) < 0) { perror("bpfload: fentry attach"); return 1; }

	printf("attach kprobe %u\nattach kretprobe %u\nattach tracepoint %u\nattach fentry %u\n", prog_id(kpp), prog_id(krpp), prog_id(tpp),
	       prog_id(fep));
	fflush(stdout);
	int ready = open("/tmp/bpfload-tracing.ready", O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
	/* "perf PID FD PROG_ID FD_TYPE NAME": every fd of every process that BPF_TASK_FD_QUERY answers for (a perf event
	 * with a program: kprobe, kretprobe, tracepoint...), as `bpftool perf` walks /proc. */
	DIR *proc = opendir("/proc");
	struct dirent *pe;
	while (proc && (pe = readdir(proc)) != NULL) {
		int pid = atoi(pe->d_name);
		if (pid <= 0) continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		DIR *fds = opendir(path);
		struct dirent *fe;
		while (fds && (fe = readdir(fds)) != NULL) {
			if (fe->d_name[0] == '.') continue;
			char buf[256];
			memset(&a, 0, sizeof(a));
			a.task_fd_query.pid = pid;
			a.task_fd_query.fd = atoi(fe->d_name);
			a.task_fd_query.buf = (uint64_t)(uintptr_t)buf;
			a.task_fd_query.buf_len = sizeof(buf);
			if (sys_bpf(BPF_TASK_FD_QUERY, &a) == 0)
				printf("perf %d %d %u %u %s\n", pid, atoi(fe->d_name), a.task_fd_query.prog_id, a.task_fd_query.fd_type,
				       a.task_fd_query.buf_len ? buf : "-");
		}
		if (fds) closedir(fds);
	}
	if (proc) closedir(proc);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "list") == 0) return list();
	if (argc > 1 && strcmp(argv[1], "tracing") == 0) return hold_tracing();
	if (argc > 2 && strcmp(argv[1], "fentry") == 0) return hold_fentry(argv[2]);
	return hold();
}
