/* uidsocks: sockets owned by a non-root user, for Periscope's socket uid without BTF (guest/start.d/51-filenet.sh).
 * Drops to gid 4343 then uid 4242 (setgid first: an unprivileged process cannot change its gid), then holds a TCP
 * listener on 127.0.0.1:7005 and a UDP socket bound to 127.0.0.1:7006, prints "uidsocks ready" and sleeps. The socket
 * inodes (and so sk_uid) get the creator's fsuid, 4242; the gid differs so that a uid and a gid cannot be confused. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	if (setgid(4343) || setuid(4242)) { perror("uidsocks: drop to 4242/4343"); return 1; }
	int t = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in ta = { .sin_family = AF_INET, .sin_port = htons(7005), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(t, (struct sockaddr *)&ta, sizeof ta) || listen(t, 8)) perror("uidsocks: tcp");
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in ua = { .sin_family = AF_INET, .sin_port = htons(7006), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(u, (struct sockaddr *)&ua, sizeof ua)) perror("uidsocks: udp");
	printf("uidsocks ready uid=%d gid=%d %d %d\n", getuid(), getgid(), t, u);
	fflush(stdout);
	for (;;) pause();
}
