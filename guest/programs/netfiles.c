/* netfiles: known open files, pipes, an eventfd and sockets for Periscope's lsof and sockets tests (guest/start.d/51-filenet.sh).
 * Opens /bin/busybox and seeks to 4242, a pipe, an eventfd, a TCP listener on 127.0.0.1:7001 with one connected client
 * (an established pair), a TCP6 listener on [::1]:7002, a UDP socket on 127.0.0.1:7003, a UDP6 one on [::1]:7004 (with
 * a classic BPF filter attached), a unix
 * stream listener at /tmp/periscope-views.sock with one connected pair, and a NETLINK_ROUTE socket; then prints
 * "netfiles ready" and sleeps. known_value is read back from a core dump of this process. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

volatile unsigned long known_value = 0x5045524953434f50UL; /* "PERISCOP" */

static int tcp_listen4(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8)) perror("tcp4");
	return s;
}

int main(void)
{
	int f = open("/bin/busybox", O_RDONLY);
	lseek(f, 4242, SEEK_SET);
	int p[2];
	if (pipe(p)) perror("pipe");
	int e = eventfd(0, EFD_CLOEXEC);

	int l4 = tcp_listen4(7001);
	int c4 = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(7001), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(c4, (struct sockaddr *)&to, sizeof to)) perror("connect");
	int a4 = accept(l4, NULL, NULL);

	int l6 = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(7002), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (bind(l6, (struct sockaddr *)&a6, sizeof a6) || listen(l6, 8)) perror("tcp6");

	int u4 = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ua = { .sin_family = AF_INET, .sin_port = htons(7003), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(u4, (struct sockaddr *)&ua, sizeof ua)) perror("udp4");
	int u6 = socket(AF_INET6, SOCK_DGRAM, 0);
	struct sockaddr_in6 ua6 = { .sin6_family = AF_INET6, .sin6_port = htons(7004), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	if (bind(u6, (struct sockaddr *)&ua6, sizeof ua6)) perror("udp6");
	/* A classic (cBPF) filter, as udev, DHCP clients and libpcap attach: "accept the whole packet". The kernel turns it
	 * into a bpf_prog that no ID list holds; `bpf` must count it, not call it a hidden program. */
	struct sock_filter accept_all[] = { { 0x06 /* BPF_RET | BPF_K */, 0, 0, 0xffff } };
	struct sock_fprog classic = { .len = 1, .filter = accept_all };
	if (setsockopt(u6, SOL_SOCKET, SO_ATTACH_FILTER, &classic, sizeof classic)) perror("SO_ATTACH_FILTER");

	int ul = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	strcpy(un.sun_path, "/tmp/periscope-views.sock");
	unlink(un.sun_path);
	if (bind(ul, (struct sockaddr *)&un, sizeof un) || listen(ul, 8)) perror("unix");
	int uc = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(uc, (struct sockaddr *)&un, sizeof un)) perror("unix connect");
	int ua_ = accept(ul, NULL, NULL);

	int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	struct sockaddr_nl na = { .nl_family = AF_NETLINK };
	if (bind(nl, (struct sockaddr *)&na, sizeof na)) perror("netlink");

	printf("netfiles ready %d %d %d %d %d %d %d %d %d %d %d %d %d %d lu=%lx\n", f, p[0], p[1], e, l4, c4, a4, l6, u4, u6, ul, uc, ua_, nl, known_value);
	fflush(stdout);
	for (;;) pause();
}
